"""Data sets as image paths + a label matrix, and the torch Dataset/transforms that load them.

Readers return `LabelledImages` (plain paths and a NumPy matrix) so they are cheap to build on the driver,
to check before Ray starts, and to pass to workers. MS-COCO and the embedded synthetic set share one
pycocotools reader; VOC 2007, VG-500 and CSV files have theirs in `readers`.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

COCO_SPLITS = ("train", "val")


class DataError(ValueError):
    """A data set file or folder is missing or unreadable; the one-line message names the path and the fix."""


@dataclass(frozen=True)
class LabelledImages:
    """Images and their labels: labels[i, c] is 1 (present), 0 (absent) or -1 (ignore, e.g. VOC difficult)."""

    paths: tuple[str, ...]  # absolute image paths
    labels: np.ndarray  # N x C int8
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def read_coco(data_dir: str | Path, split: str) -> LabelledImages:
    """MS-COCO 2014 layout: `annotations/instances_{split}2014.json`, images in `{split}2014/`.

    Classes are ordered by category id (COCO's own order, as ASL; ML-GCN sorts by name). Images without
    any annotation are dropped (82,081 / 40,137 remain in COCO 2014); crowd annotations count as labels.
    """
    if split not in COCO_SPLITS:
        raise DataError(f"unknown split {split!r} for {data_dir}: use one of {', '.join(COCO_SPLITS)}")
    root = Path(data_dir).absolute()
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist: check data_dir (MS-COCO 2014 layout expected)")
    ann_file = root / "annotations" / f"instances_{split}2014.json"
    if not ann_file.is_file():
        raise DataError(f"annotation file {ann_file} is missing: download MS-COCO 2014 annotations there")
    coco = _load_coco(ann_file)
    try:
        cat_ids = sorted(coco.cats)
        column = {cid: n for n, cid in enumerate(cat_ids)}
        classes = tuple(str(coco.cats[cid]["name"]) for cid in cat_ids)
        image_ids = [i for i in sorted(coco.imgs) if coco.imgToAnns.get(i)]
        labels = np.zeros((len(image_ids), len(cat_ids)), np.int8)
        for row, image_id in enumerate(image_ids):
            labels[row, [column[a["category_id"]] for a in coco.imgToAnns[image_id]]] = 1
        folder = root / f"{split}2014"
        paths = tuple(str(folder / coco.imgs[i]["file_name"]) for i in image_ids)
    except (KeyError, TypeError) as err:
        raise DataError(f"annotation file {ann_file} lacks a key or category ({err}): "
                        "re-download or regenerate it") from None
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise DataError(f"image {missing[0]} is missing ({len(missing)} of {len(paths)} images of {ann_file.name} "
                        f"missing): download the {split}2014 images into {folder}")
    return LabelledImages(paths, labels, classes)


def _load_coco(ann_file: Path):
    """pycocotools COCO with its prints silenced and its errors turned into one-line DataErrors."""
    from pycocotools.coco import COCO

    fix = "re-download or regenerate it"
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(str(ann_file))
    except json.JSONDecodeError as err:
        raise DataError(f"annotation file {ann_file} is not valid JSON (line {err.lineno}): {fix}") from None
    except (AssertionError, KeyError, TypeError, AttributeError) as err:
        raise DataError(f"annotation file {ann_file} is not COCO format ({type(err).__name__}: {err}): "
                        f"{fix}") from None
    absent = [key for key in ("images", "annotations", "categories") if key not in coco.dataset]
    if absent:
        raise DataError(f"annotation file {ann_file} has no {absent[0]!r} key: {fix}")
    return coco


# the training split and the split evaluated (mAP) of each data set
SPLITS: dict[str, tuple[str, str]] = {"synthetic": ("train", "val"), "coco": ("train", "val"),
                                      "voc": ("trainval", "test"), "vg500": ("train", "test"), "csv": ("train", "val")}


def read_split(dataset: str, data_dir: str, split: str) -> LabelledImages:
    """One split of a data set; synthetic data_dir must already hold the set (see synthetic.ensure_synthetic)."""
    from trainables.readers import read_csv, read_vg500, read_voc

    readers: dict[str, Callable[[str, str], LabelledImages]] = {
        "coco": read_coco, "synthetic": read_coco, "voc": read_voc, "vg500": read_vg500, "csv": read_csv}
    if dataset not in readers:
        raise DataError(f"dataset={dataset!r} at {data_dir} is not supported: use one of {', '.join(readers)}")
    return readers[dataset](data_dir, split)


def verify_images(paths: Sequence[str], max_check: int | None = None) -> None:
    """Open image headers (cheap) so a broken file fails on the driver; max_check = an even sample of that many."""
    chosen = range(len(paths))
    if max_check is not None and max_check < len(paths):
        chosen = np.linspace(0, len(paths) - 1, max_check).round().astype(int).tolist()
    for n in chosen:
        _check_open(paths[n], lambda image: image.size)


def _check_open(path: str, use: Callable[[Image.Image], object]):
    try:
        with Image.open(path) as image:
            return use(image)
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise DataError(f"image {path} cannot be read ({type(err).__name__}): re-download or regenerate it, "
                        "or remove it from the annotations") from None


class ImageDataset(torch.utils.data.Dataset):
    """(image tensor, float32 target with -1 kept) pairs; an unreadable image raises DataError naming it."""

    def __init__(self, data: LabelledImages, transform: Callable | None = None) -> None:
        self.data = data
        self.transform = transform
        self.targets = torch.from_numpy(data.labels.astype(np.float32))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image = _check_open(self.data.paths[index], lambda im: im.convert("RGB"))
        if self.transform is not None:
            image = self.transform(image)
        return image, self.targets[index]


def class_counts_json(data: LabelledImages) -> dict:
    """Per-class image counts (label == 1), for `imlgcn data stats`."""
    return {"classes": list(data.classes), "image_counts": (data.labels == 1).sum(axis=0).astype(int).tolist(),
            "num_images": len(data)}
