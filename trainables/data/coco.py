"""The MS-COCO 2014 reader (also reads the embedded synthetic set, written in the same format).

The official 80 categories live here too: the synthetic generator draws its classes from them.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np

from trainables.data.labelled_images import DataError, LabelledImages, data_folder, reading, require_images

# The official 80 categories of instances_*2014.json, "supercategory: id name, ...":
_COCO = """person: 1 person
vehicle: 2 bicycle, 3 car, 4 motorcycle, 5 airplane, 6 bus, 7 train, 8 truck, 9 boat
outdoor: 10 traffic light, 11 fire hydrant, 13 stop sign, 14 parking meter, 15 bench
animal: 16 bird, 17 cat, 18 dog, 19 horse, 20 sheep, 21 cow, 22 elephant, 23 bear, 24 zebra, 25 giraffe
accessory: 27 backpack, 28 umbrella, 31 handbag, 32 tie, 33 suitcase
sports: 34 frisbee, 35 skis, 36 snowboard, 37 sports ball, 38 kite, 39 baseball bat, 40 baseball glove
sports: 41 skateboard, 42 surfboard, 43 tennis racket
kitchen: 44 bottle, 46 wine glass, 47 cup, 48 fork, 49 knife, 50 spoon, 51 bowl
food: 52 banana, 53 apple, 54 sandwich, 55 orange, 56 broccoli, 57 carrot, 58 hot dog, 59 pizza
food: 60 donut, 61 cake
furniture: 62 chair, 63 couch, 64 potted plant, 65 bed, 67 dining table, 70 toilet
electronic: 72 tv, 73 laptop, 74 mouse, 75 remote, 76 keyboard, 77 cell phone
appliance: 78 microwave, 79 oven, 80 toaster, 81 sink, 82 refrigerator
indoor: 84 book, 85 clock, 86 vase, 87 scissors, 88 teddy bear, 89 hair drier, 90 toothbrush"""
COCO_CATEGORIES: tuple[tuple[int, str, str], ...] = tuple(  # (id, name, supercategory), by id
    (int(item.split(" ", 1)[0]), item.split(" ", 1)[1], sup)
    for sup, items in (line.split(": ") for line in _COCO.splitlines()) for item in items.split(", "))


def read_coco(data_dir: str | Path, split: str) -> LabelledImages:
    """MS-COCO 2014 layout: `annotations/instances_{split}2014.json`, images in `{split}2014/`.

    Classes are ordered by category id (COCO's own order, as ASL; ML-GCN sorts by name). Images without
    any annotation are dropped (82,081 / 40,137 remain in COCO 2014); crowd annotations count as labels.
    """
    root = data_folder(data_dir, "MS-COCO 2014")
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
    if not classes or not image_ids:  # read on, either would train on nothing
        empty = "no categories" if not classes else "no image with an annotation"
        raise DataError(f"annotation file {ann_file} has {empty}: re-download or regenerate it")
    require_images(paths, ann_file, f"download the {split}2014 images into {folder}")
    return LabelledImages(paths, labels, classes)


def _load_coco(ann_file: Path):
    """pycocotools COCO with its prints silenced and its errors turned into one-line DataErrors."""
    from pycocotools.coco import COCO

    fix = "re-download or regenerate it"
    try:
        with contextlib.redirect_stdout(io.StringIO()), reading(ann_file, "annotation file"):
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
