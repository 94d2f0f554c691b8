"""Readers for PASCAL VOC 2007, Visual Genome 500 (SSGRL / C-Tran files) and users' own CSV files.

Each returns `LabelledImages` like `coco.read_coco`, so the driver can check a set before Ray starts; every
problem is one `DataError` line that names the file and the fix. Which splits exist is the data set
registry's fact (`datasets.DATASETS`), checked there before a reader is called.
"""

from __future__ import annotations

import csv
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from trainables.data.labelled_images import DataError, LabelledImages, data_folder, reading, require_images

VOC_CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
               "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")
VG500_NUM_CLASSES = 500


def read_voc(data_dir: str | Path, split: str) -> LabelledImages:
    """PASCAL VOC 2007: ids from `ImageSets/Main/{split}.txt`, labels from `Annotations/{id}.xml`.

    As in ML-GCN, a class whose objects in an image are all `difficult` is -1 (left out of the loss and AP);
    one non-difficult object makes it 1. Images without objects are kept as all-zero rows.
    """
    given = data_folder(data_dir, "VOCdevkit/VOC2007")  # VOC2007 itself or a folder above it
    root = next((c for c in (given, given / "VOC2007", given / "VOCdevkit" / "VOC2007")
                 if (c / "ImageSets").is_dir()), given)
    get = "download VOC 2007 (VOCdevkit/VOC2007 layout) there"
    split_file = root / "ImageSets" / "Main" / f"{split}.txt"
    if not split_file.is_file():
        raise DataError(f"split file {split_file} is missing: {get}")
    with reading(split_file, "split file"):
        ids = [line.strip() for line in split_file.read_text().splitlines() if line.strip()]
    column = {name: n for n, name in enumerate(VOC_CLASSES)}
    labels = np.zeros((len(ids), len(VOC_CLASSES)), np.int8)
    paths = []
    for row, image_id in enumerate(ids):
        xml_file = root / "Annotations" / f"{image_id}.xml"
        if not xml_file.is_file():
            raise DataError(f"annotation file {xml_file} is missing (listed in {split_file.name}): {get}")
        try:
            with reading(xml_file, "annotation file"):
                annotation = ET.parse(xml_file).getroot()
        except ET.ParseError as err:
            raise DataError(f"annotation file {xml_file} is not valid XML (line {err.position[0]}): "
                            "re-download VOC 2007 or fix it") from None
        easy, hard = set(), set()
        for obj in annotation.findall("object"):  # direct children: a person's <part>s are not objects
            name = (obj.findtext("name") or "").strip()
            if name not in column:
                raise DataError(f"annotation file {xml_file} has an object named {name!r}, not a VOC class: "
                                f"fix it to one of {', '.join(VOC_CLASSES)}")
            difficult = (obj.findtext("difficult") or "0").strip()
            if difficult not in ("0", "1"):
                raise DataError(f"annotation file {xml_file} has <difficult>{difficult}</difficult>: use 0 or 1")
            (hard if difficult == "1" else easy).add(column[name])
        labels[row, sorted(hard - easy)] = -1
        labels[row, sorted(easy)] = 1
        filename = (annotation.findtext("filename") or "").strip() or f"{image_id}.jpg"
        paths.append(str(root / "JPEGImages" / filename))
    paths = tuple(paths)
    require_images(paths, split_file, f"download the VOC 2007 JPEGImages into {root / 'JPEGImages'}")
    return LabelledImages(paths, labels, VOC_CLASSES)


def read_vg500(data_dir: str | Path, split: str) -> LabelledImages:
    """Visual Genome 500 as SSGRL and C-Tran ship it: `{split}_list_500.txt`, one index JSON, `VG_100K/`.

    `vg_category_500_labels_index.json` maps an image file name to its label indices (0..499). Neither repo
    publishes the 500 names, so the classes are `label_000` .. `label_499`. An image of the list without an
    entry in the JSON is an error, as it is in both repos (a KeyError there), not an unlabelled image.
    """
    root = data_folder(data_dir, "VG-500")
    get = "download the VG-500 files of SSGRL / C-Tran there"
    list_file, label_file = root / f"{split}_list_500.txt", root / "vg_category_500_labels_index.json"
    for kind, needed in (("list", list_file), ("label", label_file)):
        if not needed.is_file():
            raise DataError(f"{kind} file {needed} is missing: {get}")
    with reading(list_file, "list file"):
        names = [line.strip() for line in list_file.read_text().splitlines() if line.strip()]
    try:
        with reading(label_file, "label file"):
            index = json.loads(label_file.read_text())
    except json.JSONDecodeError as err:
        raise DataError(f"label file {label_file} is not valid JSON (line {err.lineno}): re-download it") from None
    if not isinstance(index, dict):
        raise DataError(f"label file {label_file} is not a JSON object (image -> label indices): re-download it")
    labels = np.zeros((len(names), VG500_NUM_CLASSES), np.int8)
    for row, name in enumerate(names):
        if name not in index:
            raise DataError(f"image {name} of {list_file.name} has no entry in {label_file}: "
                            f"re-download both files or remove it from {list_file.name}")
        found = index[name]
        if not isinstance(found, list) or not all(type(i) is int and 0 <= i < VG500_NUM_CLASSES for i in found):
            raise DataError(f"image {name} has label indices {found!r} in {label_file}, not a list of 0..499: "
                            "re-download it")
        labels[row, found] = 1
    paths = tuple(str(root / "VG_100K" / name) for name in names)
    require_images(paths, list_file, f"download the Visual Genome images into {root / 'VG_100K'}")
    classes = tuple(f"label_{n:03d}" for n in range(VG500_NUM_CLASSES))
    return LabelledImages(paths, labels, classes)


def _csv_rows(csv_file: Path) -> list[tuple[int, str, list[str]]]:
    """(line number, image, label names) per data row of an `image,labels` file; a row with more fields
    than the header or without its labels field is an error (csv.DictReader would drop or blank them)."""
    with reading(csv_file, "CSV file"), open(csv_file, newline="", encoding="utf-8-sig") as handle:  # -sig: Excel's BOM
        reader = csv.DictReader(handle, skipinitialspace=True)
        shape = "write image,labels with the labels joined by | (an empty labels field: no label)"
        try:
            if reader.fieldnames is None:
                raise DataError(f"CSV file {csv_file} is empty: write the header image,labels, then one row "
                                "per image")
            if not {"image", "labels"} <= {f.strip() for f in reader.fieldnames}:
                raise DataError(f"CSV file {csv_file} has header {reader.fieldnames}: "
                                "the header must be image,labels")
            reader.fieldnames = [f.strip() for f in reader.fieldnames]
            rows = []
            for record in reader:
                where = f"CSV file {csv_file} line {reader.line_num}"
                if None in record:  # DictReader's key for fields past the header's
                    raise DataError(f"{where} has {len(reader.fieldnames) + len(record[None])} fields, the "
                                    f"header {len(reader.fieldnames)}: {shape}; quote a path holding a comma")
                if record["labels"] is None:
                    raise DataError(f"{where} has no labels field: {shape}")
                image = (record["image"] or "").strip()
                if not image:
                    raise DataError(f"{where} has no image: fill in or delete it")
                rows.append((reader.line_num, image, [n.strip() for n in record["labels"].split("|")
                                                      if n.strip()]))
        except UnicodeDecodeError:  # decoded a block at a time, so no line number
            raise DataError(f"CSV file {csv_file} is not UTF-8 text: save it as CSV UTF-8") from None
        except csv.Error as err:
            raise DataError(f"CSV file {csv_file} cannot be parsed near line {reader.line_num + 1} ({err}): "
                            "fix that line") from None
    return rows


def _csv_paths(root: Path, csv_file: Path, rows: list[tuple[int, str, list[str]]]) -> tuple[str, ...]:
    """Absolute image paths of the rows, each inside `root` (the README's "relative to the folder": a set
    that reaches outside its folder breaks when the folder is moved or shared) and listed once."""
    paths, first, folder = [], {}, Path(os.path.normpath(root))
    for line, image, _ in rows:
        path = os.path.normpath(folder / image)
        if Path(image).is_absolute() or not Path(path).is_relative_to(folder) or Path(path) == folder:
            how = "is absolute" if Path(image).is_absolute() else f"leaves the folder {root}"
            raise DataError(f"CSV file {csv_file} line {line}: image path {image} {how}: write it relative to "
                            f"{root} (copy or link the image into that folder)")
        if path in first:
            raise DataError(f"CSV file {csv_file} lists image {image} twice (lines {first[path]} and {line}): "
                            "keep one row per image, with all its labels")
        first[path] = line
        paths.append(path)
    return tuple(paths)


def _class_file(classes_file: Path) -> tuple[str, ...]:
    """The classes of `classes.txt`, one a line, each once."""
    try:
        with reading(classes_file, "class file"):
            classes = tuple(line.strip() for line in classes_file.read_text(encoding="utf-8-sig").splitlines()
                            if line.strip())
    except UnicodeDecodeError:
        raise DataError(f"class file {classes_file} is not UTF-8 text: save it as UTF-8") from None
    if not classes:
        raise DataError(f"class file {classes_file} is empty: write one class per line, or remove it to take "
                        "the labels of the CSV files")
    twice = next((name for n, name in enumerate(classes) if name in classes[:n]), None)
    if twice is not None:
        raise DataError(f"class file {classes_file} lists class {twice!r} twice: keep one line per class")
    return classes


def read_csv(data_dir: str | Path, split: str) -> LabelledImages:
    """Users' own set: `{split}.csv` (header `image,labels`, labels joined by `|`), images relative to data_dir.

    Columns follow `classes.txt` if present, else the sorted labels of every CSV in data_dir, so train and val
    share one column order whichever split is read. Duplicate labels count once; an empty cell is no label.
    """
    root = data_folder(data_dir, "image,labels CSV")
    csv_file = root / f"{split}.csv"
    if Path(split).name != split or split in ("", ".", ".."):
        raise DataError(f"split {split!r} is not a plain name: --split NAME reads NAME.csv in {root}, "
                        "e.g. --split val")
    if not csv_file.is_file():
        present = ", ".join(sorted(p.name for p in root.glob("*.csv"))) or "none"
        raise DataError(f"CSV file {csv_file} is missing (CSV files there: {present}): "
                        f"write {split}.csv with header image,labels")
    rows = _csv_rows(csv_file)
    if not rows:
        raise DataError(f"CSV file {csv_file} has a header and no rows: add one row per image (image,labels)")
    paths = _csv_paths(root, csv_file, rows)
    classes_file = root / "classes.txt"
    if classes_file.is_file():
        classes = _class_file(classes_file)
    else:
        classes = tuple(sorted({n for f in sorted(root.glob("*.csv")) for *_, names in _csv_rows(f)
                                for n in names}))
    if not classes:
        raise DataError(f"no labels in the CSV files of {root}: fill the labels column or write classes.txt")
    column = {name: n for n, name in enumerate(classes)}
    labels = np.zeros((len(rows), len(classes)), np.int8)
    for row, (line, _, names) in enumerate(rows):
        unknown = [n for n in names if n not in column]
        if unknown:
            raise DataError(f"label {unknown[0]!r} in {csv_file} line {line} is not in {classes_file}: "
                            "add it there or fix the line")
        labels[row, [column[n] for n in names]] = 1
    require_images(paths, csv_file, f"copy the images there or fix the image column of {csv_file}")
    return LabelledImages(paths, labels, classes)
