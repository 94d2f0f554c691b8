"""The COCO reader and loaders on hand-made COCO files: ids, dropped images, duplicates, broken inputs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from trainables.data.preprocess import build_transforms, data_config
from trainables.data.coco import read_coco
from trainables.data.datasets import read_split
from trainables.data.images import ImageDataset, class_counts_json, verify_images
from trainables.data.labelled_images import DataError, LabelledImages

CATEGORIES = [{"id": 90, "name": "toothbrush", "supercategory": "indoor"},
              {"id": 1, "name": "person", "supercategory": "person"},
              {"id": 18, "name": "dog", "supercategory": "animal"}]


def _coco(root: Path, split: str = "train", images: int = 4) -> Path:
    """Images 10, 11, 12, ...: 10 has person + toothbrush twice, 11 has dog, 12 has none, the rest person."""
    folder = root / f"{split}2014"
    folder.mkdir(parents=True)
    (root / "annotations").mkdir(exist_ok=True)
    entries = []
    for n in range(images):
        name = f"img{n}.png"
        Image.new("RGB", (8 + n, 6), (n * 40, 0, 0)).save(folder / name)
        entries.append({"id": 10 + n, "file_name": name, "width": 8 + n, "height": 6})
    pairs = [(10, 1), (10, 90), (10, 90), (11, 18)] + [(10 + n, 1) for n in range(3, images)]
    anns = [{"id": k, "image_id": i, "category_id": c, "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0}
            for k, (i, c) in enumerate(pairs, 1)]
    doc = {"images": entries, "annotations": anns, "categories": CATEGORIES}
    (root / "annotations" / f"instances_{split}2014.json").write_text(json.dumps(doc))
    return root


def test_reader_orders_by_category_id_and_drops_unlabelled(tmp_path):
    data = read_coco(_coco(tmp_path), "train")
    assert data.classes == ("person", "dog", "toothbrush")  # ids 1, 18, 90
    assert [Path(p).name for p in data.paths] == ["img0.png", "img1.png", "img3.png"]  # img2 has no labels
    np.testing.assert_array_equal(data.labels, [[1, 0, 1], [0, 1, 0], [1, 0, 0]])  # duplicates collapse to 1
    assert data.labels.dtype == np.int8 and len(data) == 3
    assert all(Path(p).is_absolute() for p in data.paths)
    assert read_split("synthetic", str(tmp_path), "train").classes == data.classes
    assert class_counts_json(data) == {"classes": ["person", "dog", "toothbrush"], "image_counts": [2, 1, 1],
                                       "num_images": 3}


@pytest.mark.parametrize("text, message", [
    ('{"images": [', "is not valid JSON \\(line 1\\)"),
    ('[1, 2]', "is not COCO format"),
    ('{"images": [], "annotations": []}', "has no 'categories' key"),
    ('{"images": [{"id": 1}], "annotations": [{"id": 1, "image_id": 1, "category_id": 5}], "categories": []}',
     "lacks a key or category"),
])
def test_malformed_annotations(tmp_path, text, message):
    _coco(tmp_path)
    path = tmp_path / "annotations" / "instances_train2014.json"
    path.write_text(text)
    with pytest.raises(DataError, match=message) as err:
        read_coco(tmp_path, "train")
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_folder_file_split_and_dataset(tmp_path):
    with pytest.raises(DataError, match="data folder .*nowhere does not exist"):
        read_coco(tmp_path / "nowhere", "train")
    with pytest.raises(DataError, match="instances_val2014.json is missing"):
        read_coco(_coco(tmp_path), "val")
    with pytest.raises(DataError, match="unknown split 'test'.*use one of train, val"):
        read_split("coco", str(tmp_path), "test")
    with pytest.raises(DataError, match="dataset=.imagenet. .* is not supported: use one of synthetic, coco, voc, vg500, csv"):
        read_split("imagenet", str(tmp_path), "train")


def test_missing_images_are_counted(tmp_path):
    _coco(tmp_path, images=5)
    (tmp_path / "train2014" / "img1.png").unlink()
    (tmp_path / "train2014" / "img4.png").unlink()
    with pytest.raises(DataError, match="img1.png is missing \\(2 of 4 images"):
        read_coco(tmp_path, "train")


def test_corrupt_image_fails_verify_and_loading(tmp_path):
    data = read_coco(_coco(tmp_path), "train")
    verify_images(data.paths)
    Path(data.paths[1]).write_bytes(b"")
    with pytest.raises(DataError, match="img1.png cannot be read"):
        verify_images(data.paths)
    verify_images(data.paths, max_check=1)  # samples only the first
    dataset = ImageDataset(data, build_transforms(data_config("test_resnet", 16), training=False))
    with pytest.raises(DataError, match="img1.png cannot be read"):
        dataset[1]


def test_dataset_items_and_transforms(tmp_path):
    data = read_coco(_coco(tmp_path), "train")
    ignore = LabelledImages(data.paths, np.array([[1, -1, 0]] * 3, np.int8), data.classes)
    for training in (False, True):
        image, target = ImageDataset(ignore, build_transforms(data_config("test_resnet", 16), training=training, augment="rand-m9-mstd0.5-inc1" if training else ""))[2]
        assert image.shape == (3, 16, 16) and image.dtype == torch.float32  # 11 x 6 squashed, not cropped
        assert target.dtype == torch.float32 and target.tolist() == [1.0, -1.0, 0.0]
    batch = next(iter(torch.utils.data.DataLoader(ImageDataset(data, build_transforms(data_config("test_resnet", 8), True)), batch_size=3)))
    assert batch[0].shape == (3, 3, 8, 8) and batch[1].shape == (3, 3)


def test_eval_transform_keeps_the_whole_image():
    marked = Image.new("RGB", (40, 20), (0, 0, 0))
    marked.paste((255, 255, 255), (0, 0, 4, 20))  # a white strip at the far left edge
    plain = {"input_size": [3, 10, 10], "interpolation": "bilinear", "mean": [0, 0, 0], "std": [1, 1, 1]}
    out = build_transforms(plain, training=False)(marked)
    assert out[:, :, 0].min() > 0.5 and out[:, :, -1].max() < 0.1


def test_training_transform_keeps_the_whole_image():
    """RandomResizedCrop with scale = ratio = 1 on the squashed image: the edge strip survives."""
    marked = Image.new("RGB", (40, 20), (0, 0, 0))
    marked.paste((255, 255, 255), (0, 0, 4, 20))
    plain = {"input_size": [3, 10, 10], "interpolation": "bilinear", "mean": [0, 0, 0], "std": [1, 1, 1]}
    for _ in range(5):
        out = build_transforms(plain, training=True)(marked)  # random flip: strip at one edge or the other
        edges = out[:, :, 0].min().item(), out[:, :, -1].min().item()
        assert max(edges) > 0.5 and out[:, :, 3:7].max() < 0.1


def test_preprocessing_comes_from_timm():
    assert data_config("tresnet_m", 448)["mean"] == [0.0, 0.0, 0.0]  # TResNet takes [0, 1] inputs
    resnet = data_config("resnet101", 32)
    assert resnet["std"] == pytest.approx([0.229, 0.224, 0.225]) and resnet["interpolation"] == "bicubic"
    assert resnet["input_size"] == [3, 32, 32] and resnet["crop_mode"] == "squash"
