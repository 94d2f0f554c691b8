"""VOC 2007, VG-500 and CSV readers on tiny sets written in each exact on-disk format, quirks included."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainables.data.datasets import read_split
from trainables.data.labelled_images import DataError
from trainables.data.readers import VOC_CLASSES, read_csv, read_vg500, read_voc


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)


def _obj(name: str, difficult: str | None = "0", part: bool = False) -> str:
    flag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    extra = "<part><name>head</name><bndbox><xmin>1</xmin></bndbox></part>" if part else ""
    return (f"<object><name>{name}</name><pose>Unspecified</pose><truncated>0</truncated>{flag}"
            f"<bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox>{extra}</object>")


def _xml(filename: str | None, objects: list[str]) -> str:
    name = "" if filename is None else f"<filename>{filename}</filename>"
    return (f"<annotation><folder>VOC2007</folder>{name}<size><width>8</width><height>8</height>"
            f"<depth>3</depth></size><segmented>0</segmented>{''.join(objects)}</annotation>")


# id -> (<filename> or None, objects, image file name)
VOC_IMAGES = {
    "000001": ("000001.jpg", [_obj("dog"), _obj("dog"), _obj("person", "1", part=True)], "000001.jpg"),
    "000002": ("custom.jpg", [_obj("car", "1"), _obj("car"), _obj("cat", None)], "custom.jpg"),
    "000003": ("000003.jpg", [], "000003.jpg"),
    "000004": (None, [_obj("bird", "1"), _obj("bird", "1"), _obj("tvmonitor")], "000004.jpg"),
}


def _voc(root: Path) -> Path:
    """A VOC2007 folder: duplicates, difficult-only, mixed difficult, no object, no <filename>, a blank line."""
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    for image_id, (filename, objects, image) in VOC_IMAGES.items():
        (root / "Annotations" / f"{image_id}.xml").write_text(_xml(filename, objects))
        _image(root / "JPEGImages" / image)
    (root / "ImageSets" / "Main" / "trainval.txt").write_text("000001\n\n 000002 \n000003\n000004\n")
    (root / "ImageSets" / "Main" / "test.txt").write_text("000004\n000001")
    return root


def _voc_expected() -> np.ndarray:
    """Rows of VOC_IMAGES: dog 1 / person -1; car 1 (one easy box wins), cat 1; nothing; bird -1, tvmonitor 1."""
    cells = {(0, "dog"): 1, (0, "person"): -1, (1, "car"): 1, (1, "cat"): 1, (3, "bird"): -1, (3, "tvmonitor"): 1}
    expected = np.zeros((4, 20), np.int8)
    for (row, name), value in cells.items():
        expected[row, VOC_CLASSES.index(name)] = value
    return expected


def test_voc_labels_difficult_and_paths(tmp_path):
    root = _voc(tmp_path / "VOC2007")
    data = read_voc(root, "trainval")
    assert data.classes == VOC_CLASSES and len(data.classes) == 20  # zero-count classes keep their column
    np.testing.assert_array_equal(data.labels, _voc_expected())
    assert data.labels.dtype == np.int8
    assert data.paths == tuple(str(root / "JPEGImages" / v[2]) for v in VOC_IMAGES.values())
    test = read_voc(root, "test")  # file order kept, no trailing newline needed
    assert [Path(p).name for p in test.paths] == ["000004.jpg", "000001.jpg"]
    np.testing.assert_array_equal(test.labels, _voc_expected()[[3, 0]])


@pytest.mark.parametrize("below", ["VOC2007", "VOCdevkit/VOC2007"])
def test_voc_parent_folders(tmp_path, below):
    _voc(tmp_path / below)
    data = read_voc(str(tmp_path), "trainval")
    assert data.paths[0] == str(tmp_path / below / "JPEGImages" / "000001.jpg")


def test_voc_split_and_missing_files(tmp_path):
    root = _voc(tmp_path / "VOC2007")
    with pytest.raises(DataError, match="unknown split 'val2007'.*trainval, test, train, val"):
        read_split("voc", str(root), "val2007")
    split_file = root / "ImageSets" / "Main" / "val.txt"
    with pytest.raises(DataError, match=re.escape(f"split file {split_file} is missing: download VOC")):
        read_voc(root, "val")
    with pytest.raises(DataError, match="data folder .* does not exist"):
        read_voc(tmp_path / "nowhere", "test")
    (root / "Annotations" / "000003.xml").unlink()
    with pytest.raises(DataError, match=re.escape(f"annotation file {root / 'Annotations/000003.xml'} is missing")):
        read_voc(root, "trainval")


def test_voc_missing_image_names_it(tmp_path):
    root = _voc(tmp_path / "VOC2007")
    (root / "JPEGImages" / "custom.jpg").unlink()
    with pytest.raises(DataError) as err:
        read_voc(root, "trainval")
    message = str(err.value)
    assert f"image {root / 'JPEGImages' / 'custom.jpg'} is missing (1 of 4 images of trainval.txt" in message
    assert "\n" not in message


@pytest.mark.parametrize("text, message", [
    ("<annotation><object><name>dog</name>", "000002.xml is not valid XML \\(line 1\\)"),
    ("", "000002.xml is not valid XML"),
    (_xml("000002.jpg", [_obj("plane")]), "000002.xml has an object named 'plane', not a VOC class"),
    (_xml("000002.jpg", [_obj("Dog")]), "object named 'Dog'"),
    (_xml("000002.jpg", [_obj("dog", "yes")]), "<difficult>yes</difficult>: use 0 or 1"),
])
def test_voc_malformed_annotation(tmp_path, text, message):
    root = _voc(tmp_path / "VOC2007")
    (root / "Annotations" / "000002.xml").write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_voc(root, "trainval")
    assert "\n" not in str(err.value)


def _vg(root: Path, index: dict | None = None) -> Path:
    """VG-500 files: a list without its final newline, duplicate indices, an empty list, an unlisted entry."""
    for name in ("1.jpg", "2.jpg", "3.jpg"):
        _image(root / "VG_100K" / name)
    (root / "train_list_500.txt").write_text("1.jpg\n2.jpg\n\n3.jpg")
    (root / "test_list_500.txt").write_text("3.jpg\n")
    index = {"1.jpg": [0, 499, 0], "2.jpg": [], "3.jpg": [7], "4.jpg": [1]} if index is None else index
    (root / "vg_category_500_labels_index.json").write_text(json.dumps(index))
    return root


def test_vg500_labels(tmp_path):
    root = _vg(tmp_path)
    data = read_vg500(root, "train")
    expected = np.zeros((3, 500), np.int8)
    expected[0, [0, 499]] = 1
    expected[2, 7] = 1
    np.testing.assert_array_equal(data.labels, expected)
    assert data.labels.dtype == np.int8
    assert len(data.classes) == 500 and data.classes[0] == "label_000" and data.classes[-1] == "label_499"
    assert data.paths == tuple(str(root / "VG_100K" / n) for n in ("1.jpg", "2.jpg", "3.jpg"))
    assert read_vg500(root, "test").labels.sum() == 1


@pytest.mark.parametrize("found", [[500], [-1], [3, 500], ["7"], [1.0], 7, [True]])
def test_vg500_bad_indices_name_the_image(tmp_path, found):
    root = _vg(tmp_path, {"1.jpg": [1], "2.jpg": found, "3.jpg": []})
    with pytest.raises(DataError, match="image 2.jpg has label indices .* not a list of 0..499"):
        read_vg500(root, "train")


def test_vg500_missing_and_malformed_files(tmp_path):
    root = _vg(tmp_path, {"1.jpg": [1], "3.jpg": []})
    with pytest.raises(DataError, match="image 2.jpg of train_list_500.txt has no entry in .*labels_index.json"):
        read_vg500(root, "train")
    with pytest.raises(DataError, match="unknown split 'val'.*train, test"):
        read_split("vg500", str(root), "val")
    (root / "vg_category_500_labels_index.json").write_text('{"1.jpg": [1],\n')
    with pytest.raises(DataError, match="is not valid JSON \\(line 2\\)"):
        read_vg500(root, "test")
    (root / "vg_category_500_labels_index.json").write_text("[[1], [2]]")
    with pytest.raises(DataError, match="is not a JSON object"):
        read_vg500(root, "test")
    (root / "vg_category_500_labels_index.json").unlink()
    label_file = root / "vg_category_500_labels_index.json"
    with pytest.raises(DataError, match=re.escape(f"label file {label_file} is missing")):
        read_vg500(root, "test")
    (root / "test_list_500.txt").unlink()
    with pytest.raises(DataError, match=re.escape(f"list file {root / 'test_list_500.txt'} is missing: download")):
        read_vg500(root, "test")


def test_vg500_missing_image_names_it(tmp_path):
    root = _vg(tmp_path)
    (root / "VG_100K" / "3.jpg").unlink()
    with pytest.raises(DataError, match=re.escape(f"image {root / 'VG_100K' / '3.jpg'} is missing (1 of 3 images "
                                                  "of train_list_500.txt missing)")):
        read_vg500(root, "train")


def _csv(root: Path) -> Path:
    """train.csv with duplicate labels, an empty cell, spaces, a path with ./ and ../ that stays in the folder;
    val.csv with a label train lacks."""
    for name in ("a.png", "b.png", "c.png"):
        _image(root / "imgs" / name)
    _image(root / "more" / "d.png")
    (root / "train.csv").write_text("image,labels\nimgs/a.png,cat|dog|cat\nimgs/b.png,\n"
                                    'imgs/c.png," dog | bird |"\n./imgs/../more/d.png,cat\n')
    (root / "val.csv").write_text("image,labels\r\nimgs/b.png,zebra|dog\r\n")
    return root


def test_csv_sorted_union_agrees_across_splits(tmp_path):
    root = _csv(tmp_path / "mine")
    train, val = read_csv(root, "train"), read_csv(root, "val")
    assert train.classes == val.classes == ("bird", "cat", "dog", "zebra")  # zebra is only in val
    np.testing.assert_array_equal(train.labels, [[0, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 0], [0, 1, 0, 0]])
    np.testing.assert_array_equal(val.labels, [[0, 0, 1, 1]])
    assert train.labels.dtype == np.int8
    assert train.paths == (str(root / "imgs/a.png"), str(root / "imgs/b.png"), str(root / "imgs/c.png"),
                           str(root / "more" / "d.png"))


def test_csv_classes_txt_order(tmp_path):
    root = _csv(tmp_path / "mine")
    (root / "classes.txt").write_text("zebra\ndog\n\n cat \nbird\nhorse\n")
    data = read_csv(root, "train")
    assert data.classes == ("zebra", "dog", "cat", "bird", "horse")
    np.testing.assert_array_equal(data.labels, [[0, 1, 1, 0, 0], [0, 0, 0, 0, 0], [0, 1, 0, 1, 0],
                                                [0, 0, 1, 0, 0]])
    (root / "classes.txt").write_text("cat\ndog\nzebra\n")
    classes_file = re.escape(str(root / "classes.txt"))
    with pytest.raises(DataError, match=f"label 'bird' in .*train.csv line 4 is not in {classes_file}: add it"):
        read_csv(root, "train")
    (root / "classes.txt").write_text("cat\ndog\ncat\n")
    with pytest.raises(DataError, match="lists class 'cat' twice"):
        read_csv(root, "val")


def test_csv_excel_bom_and_spaced_header(tmp_path):
    _image(tmp_path / "a.png")
    (tmp_path / "train.csv").write_bytes("\ufeffimage, labels\na.png,x\n".encode("utf-8"))
    data = read_csv(tmp_path, "train")
    assert data.classes == ("x",) and data.labels.tolist() == [[1]]


def test_csv_missing_files_and_header(tmp_path):
    root = _csv(tmp_path / "mine")
    with pytest.raises(DataError, match=re.escape(f"CSV file {root / 'test.csv'} is missing (CSV files there: "
                                                  "train.csv, val.csv)")):
        read_csv(root, "test")
    with pytest.raises(DataError, match="split '../mine/train' is not a plain name: --split NAME reads NAME.csv"):
        read_csv(root, "../mine/train")
    (root / "val.csv").write_text("path,tags\nimgs/a.png,cat\n")
    with pytest.raises(DataError, match="val.csv has header \\['path', 'tags'\\]: the header must be image,labels"):
        read_csv(root, "train")  # the sorted union reads every CSV, so a broken val.csv stops train too
    (root / "val.csv").write_text("")
    with pytest.raises(DataError, match="val.csv is empty: write the header image,labels"):
        read_csv(root, "val")
    (root / "val.csv").write_text("image,labels\n,cat\n")
    with pytest.raises(DataError, match="val.csv line 2 has no image"):
        read_csv(root, "val")


def test_csv_missing_image_names_it(tmp_path):
    root = _csv(tmp_path / "mine")
    (root / "imgs" / "b.png").unlink()
    with pytest.raises(DataError, match=re.escape(f"image {root / 'imgs' / 'b.png'} is missing (1 of 4 images of "
                                                  "train.csv missing): copy the images")):
        read_csv(root, "train")


@pytest.mark.parametrize("content, message", [
    ("image,labels\na.png,caf\xe9\n".encode("latin-1"), "train.csv is not UTF-8 text: save it as CSV UTF-8"),
    (b"image,labels\na.png,cat\nb.png," + b"x" * 200_000 + b"\n",
     "train.csv cannot be parsed near line 3 \\(field larger than field limit"),
])
def test_csv_unparsable_file(tmp_path, content, message):
    _image(tmp_path / "a.png")
    (tmp_path / "train.csv").write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_csv(tmp_path, "train")
