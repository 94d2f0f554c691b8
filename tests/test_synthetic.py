"""The embedded data set: COCO layout read back by the real reader, determinism, atomic writes, statistics."""

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from trainables.data import label_model, synthetic
from trainables.data.coco import COCO_CATEGORIES, read_coco
from trainables.data.labelled_images import DataError
from trainables.data.synthetic import class_set, default_classes, draw_label_sets, ensure_synthetic, generate

TINY = dict(classes="person,car,cup,chair,dining table", train_images=40, val_images=20, image_size=32, seed=3)
CHECKED_IMAGES = 10_000  # the tolerances are stated for this many generated images


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
    with np.load(label_model.STATS_PATH) as stats:
        assert sorted(c[1] for c in COCO_CATEGORIES) == sorted(stats["classes"].tolist())


def test_tiny_set_reads_back(tiny):
    train, val = read_coco(tiny, "train"), read_coco(tiny, "val")
    assert len(train) == 40 and len(val) == 20  # every image has at least one label
    assert train.labels.shape == (40, 5) and train.labels.dtype == np.int8
    assert train.classes == ("person", "car", "cup", "chair", "dining table")  # in category-id order
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
    args = dict(TINY, labels="coco")
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


def _matrix(sets: list[list[int]], num_classes: int) -> np.ndarray:
    labels = np.zeros((len(sets), num_classes))
    for row, chosen in enumerate(sets):
        labels[row, chosen] = 1
    return labels


def _coco(categories) -> tuple[np.ndarray, np.ndarray]:
    """COCO's frequencies (of its 82,081 images) and P(j | i) over `categories`, in their order."""
    names, counts, cooc = label_model.coco_statistics()
    index = [names.index(name) for _, name, _ in categories]
    return counts[index] / label_model.COCO_TRAIN_IMAGES, (cooc / counts[:, None])[np.ix_(index, index)]


def _conditional_misses(labels: np.ndarray, expected: np.ndarray) -> tuple[int, int]:
    """(pairs whose P(j | i) misses `expected` by more than 0.05 + 2 standard errors, pairs checked), over
    the pairs with at least 100 images of i."""
    n_i = labels.sum(axis=0)
    observed = (labels.T @ labels) / np.maximum(n_i, 1)[:, None]
    se = np.sqrt(expected * (1 - expected) / np.maximum(n_i, 1)[:, None])
    checked = (n_i[:, None] >= 100) & ~np.eye(len(n_i), dtype=bool)
    return int(((np.abs(observed - expected) > 0.05 + 2 * se) & checked).sum()), int(checked.sum())


def test_all_80_classes_match_coco_frequencies_and_labels_per_image():
    cats = class_set("all")
    labels = _matrix(draw_label_sets(cats, CHECKED_IMAGES, "coco", np.random.default_rng(0)), 80)
    frequency, _ = _coco(cats)
    common = frequency > 0.03
    assert common.sum() >= 20
    relative = np.abs(labels.mean(axis=0) - frequency) / frequency
    assert relative[common].max() <= 0.20, relative[common].max()
    assert abs(labels.sum(axis=1).mean() / 2.94 - 1) <= 0.10  # COCO: 2.94 labels per image


@pytest.mark.parametrize("spec", ["all", "default", "fork,knife,spoon,cup,bowl,dining table,person,car,tv,laptop"])
def test_every_class_set_keeps_cocos_conditional_probabilities(spec):
    cats = class_set(spec)
    labels = _matrix(draw_label_sets(cats, CHECKED_IMAGES, "coco", np.random.default_rng(1)), len(cats))
    misses, checked = _conditional_misses(labels, _coco(cats)[1])
    assert checked >= 20 and misses == 0, (misses, checked)


def test_the_independent_control_has_the_same_frequencies_and_no_context():
    cats = class_set("default")
    structured = _matrix(draw_label_sets(cats, CHECKED_IMAGES, "coco", np.random.default_rng(2)), len(cats))
    control = _matrix(draw_label_sets(cats, CHECKED_IMAGES, "independent", np.random.default_rng(3)), len(cats))
    f_control, f_structured = control.mean(axis=0), structured.mean(axis=0)
    two_sample_se = np.sqrt(f_structured * (1 - f_structured) * 2 / CHECKED_IMAGES)
    assert (np.abs(f_control - f_structured) <= 4 * two_sample_se).all()  # the same frequencies
    q = label_model.independent_probabilities(f_control)  # no context: P(j | i) = q_j whatever i is
    misses, checked = _conditional_misses(control, np.broadcast_to(q, (len(cats), len(cats))))
    assert checked >= 20 and misses == 0
    names = [name for _, name, _ in cats]  # while the structured set keeps the strong dependencies
    fork, table = names.index("fork"), names.index("dining table")
    assert structured[structured[:, fork] == 1, table].mean() > 0.6 > control[control[:, fork] == 1, table].mean()


def test_the_default_class_set_keeps_the_clusters_and_a_long_tail():
    chosen = set(default_classes())
    clusters = ({"fork", "knife", "spoon", "cup", "bowl", "dining table"}, {"keyboard", "mouse", "laptop", "tv"},
                {"baseball bat", "baseball glove", "person"}, {"microwave", "oven", "sink"})
    assert all(cluster <= chosen for cluster in clusters)
    cats = class_set("default")
    train = _matrix(draw_label_sets(cats, 2000, "coco", np.random.default_rng(0)), len(cats))
    rarest = np.sort(train.sum(axis=0))[:3]
    assert 15 <= rarest[0] <= 60, rarest  # a few dozen training images in the default 2,000


def test_looks_depend_on_the_class_only():
    from trainables.data.synthetic_render import coco_difficulty, coco_looks

    assert len(set(coco_looks())) == 80 and coco_looks() == coco_looks()  # one fixed look per COCO class
    difficulty = coco_difficulty()
    frequency, _ = _coco(class_set("all"))
    assert abs(np.corrcoef(difficulty, frequency)[0, 1]) < 0.3  # not a frequency rank


def test_unknown_class_names_are_one_line_errors():
    with pytest.raises(DataError, match="dragon is not a COCO class name"):
        class_set("person,dragon")


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
    assert ensure_synthetic(str(out), **TINY, labels="coco") == out  # ... ensure_synthetic takes the winner's set
    assert _digest(out) == _digest(tiny) and sorted(p.name for p in tmp_path.iterdir()) == ["shared"]
