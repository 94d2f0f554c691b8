"""The split index: both splits' image paths, label matrices and class names in one .npz, written by
the driver after it has read and checked the data set, and read by every trial instead of the
annotation files. A trial's set-up then does not re-parse annotations (300 MB for COCO 2014) nor
re-check image files: loading the index is one array read whatever the data set's format. Paths are
stored as UTF-8 bytes relative to their common folder and turned into strings only when an image is
read, so the set-up does not build 120,000 Python strings for COCO.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from trainables.config import DATA, TrialConfig, keys_of
from trainables.data.labelled_images import DataError, LabelledImages

DATA_FIELDS = keys_of(DATA)  # declared with each key in trainables.config


def index_path(root: str | Path, config: TrialConfig) -> Path:
    """`<root>/index-<hash>.npz`, keyed by what identifies the data (data set, folder, generator settings)."""
    values = {name: getattr(config, name) for name in DATA_FIELDS}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root).absolute() / f"index-{digest}.npz"


class IndexedPaths(Sequence[str]):
    """Image paths kept as one byte array relative to `root`; item i is decoded when it is asked for."""

    def __init__(self, root: str, relative: np.ndarray) -> None:
        self.root, self.relative = root, relative

    def __len__(self) -> int:
        return len(self.relative)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return os.path.join(self.root, self.relative[index].decode("utf-8"))


def write_index(path: str | Path, train: LabelledImages, val: LabelledImages) -> Path:
    """Write the index atomically (temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    paths = [*train.paths, *val.paths]
    root = os.path.dirname(paths[0]) if len(paths) == 1 else (os.path.commonpath(paths) if paths else "")

    def relative(split: LabelledImages) -> np.ndarray:
        return np.array([os.path.relpath(p, root).encode("utf-8") for p in split.paths], dtype=bytes)

    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.npz")
    np.savez(tmp, root=np.array(root), train_paths=relative(train), train_labels=train.labels,
             val_paths=relative(val), val_labels=val.labels, classes=np.array(train.classes, dtype=str))
    os.replace(tmp, path)
    return path


def read_index(path: str | Path) -> tuple[LabelledImages, LabelledImages]:
    """(training split, evaluated split) from the index; a missing or unreadable one is a DataError."""
    try:
        with np.load(path, allow_pickle=False) as index:
            classes = tuple(str(c) for c in index["classes"])
            root = str(index["root"])
            train = LabelledImages(IndexedPaths(root, index["train_paths"]), index["train_labels"], classes)
            val = LabelledImages(IndexedPaths(root, index["val_paths"]), index["val_labels"], classes)
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"split index {path} cannot be read ({type(error).__name__}): run the study's data check "
                        "again (`imlgcn study resume` rewrites it) or delete it") from None
    return train, val
