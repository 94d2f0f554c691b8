"""The two splits a run uses (training and evaluated), read once and wrapped in torch Datasets."""

from __future__ import annotations

from dataclasses import dataclass

from trainables.config import TrialConfig
from trainables.data.datasets import get_dataset, read_split
from trainables.data.images import ImageDataset
from trainables.data.labelled_images import LabelledImages
from trainables.data.preprocess import build_transforms, data_config
from trainables.training.split_index import read_index


@dataclass(frozen=True)
class Splits:
    """Train and validation images with their label matrices, and the transformed datasets."""

    train: LabelledImages
    val: LabelledImages
    train_set: ImageDataset  # training transform (augmentation)
    train_eval_set: ImageDataset  # eval transform, for F_GAP
    val_set: ImageDataset


def load_splits(config: TrialConfig, index: str = "") -> Splits:
    """The training and evaluated split of the configured data set: from the driver's split index when
    given (see split_index), else read from the data set's files (data_dir resolved by the driver)."""
    if index:
        train, val = read_index(index)
    else:
        dataset = get_dataset(config.dataset)
        train = read_split(config.dataset, config.data_dir, dataset.train_split)
        val = read_split(config.dataset, config.data_dir, dataset.eval_split)
    preprocess = data_config(config.backbone, config.image_size)
    fit, plain = build_transforms(preprocess, True, config.augment), build_transforms(preprocess, False)
    return Splits(train, val, ImageDataset(train, fit), ImageDataset(train, plain), ImageDataset(val, plain))
