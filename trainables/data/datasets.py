"""The data sets this tool reads: one plain dict, one entry per data set, each the whole truth about it.

An entry names its reader, the splits it has (the training split first, the evaluated split second),
its number of classes and the packaged word vectors of its class names (for `embedding=word`).
Adding a data set is one entry here (and its reader).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Callable

from trainables.data.coco import COCO_CATEGORIES, read_coco
from trainables.data.labelled_images import DataError, LabelledImages
from trainables.data.readers import VG500_NUM_CLASSES, VOC_CLASSES, read_csv, read_vg500, read_voc

Reader = Callable[[str, str], LabelledImages]


@dataclass(frozen=True)
class Dataset:
    """One data set kind: how to read it and what is known about it before reading."""

    reader: Reader
    splits: tuple[str, ...]  # readable splits: [0] trains, [1] is evaluated (mAP)
    num_classes: int | None  # None: set by the files (csv) or by the config (synthetic)
    word_vectors: str = ""  # packaged GloVe file for its class names, in trainables/resources
    any_split: bool = False  # True: any split name the files provide (csv: {split}.csv)

    @property
    def train_split(self) -> str:
        return self.splits[0]

    @property
    def eval_split(self) -> str:
        return self.splits[1]


DATASETS: dict[str, Dataset] = {
    "synthetic": Dataset(read_coco, ("train", "val"), None, "coco_glove300.npz"),
    "coco": Dataset(read_coco, ("train", "val"), len(COCO_CATEGORIES), "coco_glove300.npz"),
    "voc": Dataset(read_voc, ("trainval", "test", "train", "val"), len(VOC_CLASSES), "voc_glove300.npz"),
    "vg500": Dataset(read_vg500, ("train", "test"), VG500_NUM_CLASSES),
    "csv": Dataset(read_csv, ("train", "val"), None, any_split=True),
}


def get_dataset(name: str, data_dir: str = "") -> Dataset:
    """The registry entry `name`; an unknown name is a DataError listing the known ones."""
    if name not in DATASETS:
        where = f" at {data_dir}" if data_dir else ""
        raise DataError(f"dataset={name!r}{where} is not supported: use one of {', '.join(DATASETS)}")
    return DATASETS[name]


def read_split(dataset: str, data_dir: str, split: str) -> LabelledImages:
    """One split of a data set (a synthetic data_dir must already hold the set: synthetic.ensure_synthetic)."""
    entry = get_dataset(dataset, data_dir)
    if split not in entry.splits and not entry.any_split:
        raise DataError(f"unknown split {split!r} for {data_dir}: use one of {', '.join(entry.splits)}")
    return entry.reader(data_dir, split)


def packaged_word_vectors(dataset: str) -> str | None:
    """Path of the GloVe vectors shipped for the data set's class names, or None when none are packaged."""
    name = get_dataset(dataset).word_vectors
    return str(resources.files("trainables") / "resources" / name) if name else None
