"""The embedded data set: COCO layout read back by the real reader, determinism, atomic writes, statistics."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainables import synthetic
from trainables.coco import read_coco
from trainables.labelled_images import DataError
from trainables.coco import COCO_CATEGORIES
from trainables.synthetic import ensure_synthetic, generate, label_stats, sample_label_sets

TINY = dict(num_classes=5, train_images=40, val_images=20, image_size=32, seed=3)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return generate(tmp_path_factory.mktemp("syn") / "set", **TINY)


def _digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        sha.update(str(path.relative_to(folder)).encode() + path.read_bytes())
    return sha.hexdigest()


def test_coco_table_is_the_official_one():
    ids = [c[0] for c in COCO_CATEGORIES]
    assert len(ids) == 80 and len(set(ids)) == 80 and ids == sorted(ids)
    assert ids[0] == 1 and ids[-1] == 90 and {12, 26, 29, 30, 45, 66, 68, 69, 71, 83}.isdisjoint(ids)
    assert dict((i, n) for i, n, _ in COCO_CATEGORIES)[67] == "dining table"
    with np.load(synthetic.STATS_PATH) as stats:
        assert sorted(c[1] for c in COCO_CATEGORIES) == sorted(stats["classes"].tolist())


def test_tiny_set_reads_back(tiny):
    train, val = read_coco(tiny, "train"), read_coco(tiny, "val")
    assert len(train) == 40 and len(val) == 20  # every image has at least one label
    assert train.labels.shape == (40, 5) and train.labels.dtype == np.int8
    assert train.classes == ("person", "car", "cup", "chair", "dining table")  # top 5, in category-id order
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in train.paths)
    assert (train.labels.sum(axis=1) >= 1).all()
    assert set((tiny / "train2014").iterdir()) == {Path(p) for p in train.paths}


def test_non_contiguous_ids_map_to_their_columns(tiny):
    doc = json.loads((tiny / "annotations" / "instances_val2014.json").read_text())
    assert [c["id"] for c in doc["categories"]] == [1, 3, 47, 62, 67]
    val = read_coco(tiny, "val")
    column = {1: 0, 3: 1, 47: 2, 62: 3, 67: 4}
    by_image = {}
    for ann in doc["annotations"]:
        by_image.setdefault(ann["image_id"], set()).add(column[ann["category_id"]])
        x, y, w, h = ann["bbox"]
        assert 0 <= x and 0 <= y and x + w <= 32 and y + h <= 32 and ann["area"] == w * h and ann["iscrowd"] == 0
    ids = sorted(i["id"] for i in doc["images"])
    for row, image_id in enumerate(ids):
        assert set(np.flatnonzero(val.labels[row])) == by_image[image_id]


def test_same_seed_same_bytes_other_seed_differs(tmp_path, tiny):
    again = generate(tmp_path / "again", **TINY)
    other = generate(tmp_path / "other", **{**TINY, "seed": 4})
    assert _digest(again) == _digest(tiny)
    assert _digest(other) != _digest(tiny)


def test_refuses_a_non_empty_folder_and_leaves_no_temp(tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    with pytest.raises(DataError, match="not empty"):
        generate(target, **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]


def test_crash_leaves_nothing_that_looks_complete(tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(synthetic.os, "rename", boom)
    with pytest.raises(RuntimeError):
        generate(tmp_path / "set", **TINY)
    assert list(tmp_path.iterdir()) == []


def test_progress_reports_every_tenth(tmp_path):
    messages: list[str] = []
    generate(tmp_path / "set", **{**TINY, "progress": messages.append})
    assert len(messages) == 10 and messages[-1].endswith("60/60 images drawn")


def test_ensure_synthetic_caches_and_checks_settings(tmp_path, monkeypatch, tiny):
    monkeypatch.setenv("IMLGCN_CACHE", str(tmp_path / "cache"))
    args = dict(num_classes=5, train_images=40, val_images=20, image_size=32, seed=3)
    first = ensure_synthetic("", **args)
    assert first.parent == tmp_path / "cache" / "synthetic" and _digest(first) == _digest(tiny)
    stamp = (first / "annotations" / "instances_train2014.json").stat().st_mtime_ns
    assert ensure_synthetic("", **args) == first  # reused, not regenerated
    assert (first / "annotations" / "instances_train2014.json").stat().st_mtime_ns == stamp
    assert ensure_synthetic(str(tiny), **args) == tiny
    with pytest.raises(DataError, match="other settings: seed=3 \\(wanted 4\\)"):
        ensure_synthetic(str(tiny), **{**args, "seed": 4})
    empty = tmp_path / "empty"
    empty.mkdir()
    assert ensure_synthetic(str(empty), **args) == empty and len(read_coco(empty, "val")) == 20


def test_label_sets_follow_real_cooccurrence():
    _, counts, cooc = label_stats(20)
    sets = sample_label_sets(3000, counts, cooc, np.random.default_rng(0))
    labels = np.zeros((len(sets), 20))
    for row, chosen in enumerate(sets):
        labels[row, chosen] = 1
    assert 2.3 <= labels.sum(axis=1).mean() <= 3.5
    real = cooc / counts[:, None]
    both = labels.T @ labels
    synth = both / np.maximum(labels.sum(axis=0), 1)[:, None]
    supported = (cooc >= 300) & ~np.eye(20, dtype=bool)
    assert supported.sum() > 100
    assert np.corrcoef(real[supported], synth[supported])[0, 1] > 0.8
    assert np.corrcoef(counts, labels.sum(axis=0))[0, 1] > 0.8  # marginals roughly follow image_counts


def test_ensure_synthetic_loser_of_a_race_uses_the_winners_set(tmp_path, monkeypatch, tiny):
    out = tmp_path / "shared"
    real_write = synthetic._write_split

    def write_then_lose(root, split, *args):
        real_write(root, split, *args)
        if split == "val" and not out.exists():
            shutil.copytree(tiny, out)  # another process publishes first

    monkeypatch.setattr(synthetic, "_write_split", write_then_lose)
    with pytest.raises(DataError, match="filled by another process"):
        generate(out, **TINY)  # plain generate refuses to overwrite the winner ...
    shutil.rmtree(out)
    assert ensure_synthetic(str(out), **TINY) == out  # ... ensure_synthetic takes the winner's set
    assert _digest(out) == _digest(tiny) and sorted(p.name for p in tmp_path.iterdir()) == ["shared"]
