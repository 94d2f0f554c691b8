"""The split index: both splits' image paths, label matrices and class names in one .npz, written by
the driver after it has read and checked the data set, and read by every trial instead of the
annotation files. A trial's set-up then does not re-parse annotations (300 MB for COCO 2014) nor
re-check image files: loading the index is one array read whatever the data set's format.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from trainables.config import TrialConfig
from trainables.labelled_images import DataError, LabelledImages
from trainables.stage_cache import SYNTHETIC_ONLY

DATA_FIELDS = ("dataset", "data_dir", *SYNTHETIC_ONLY)


def index_path(root: str | Path, config: TrialConfig) -> Path:
    """`<root>/index-<hash>.npz`, keyed by what identifies the data (data set, folder, generator settings)."""
    values = {name: getattr(config, name) for name in DATA_FIELDS}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]
    return Path(root).absolute() / f"index-{digest}.npz"


def write_index(path: str | Path, train: LabelledImages, val: LabelledImages) -> Path:
    """Write the index atomically (temp + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.npz")
    np.savez(tmp, train_paths=np.array(train.paths, dtype=str), train_labels=train.labels,
             val_paths=np.array(val.paths, dtype=str), val_labels=val.labels, classes=np.array(train.classes, dtype=str))
    os.replace(tmp, path)
    return path


def read_index(path: str | Path) -> tuple[LabelledImages, LabelledImages]:
    """(training split, evaluated split) from the index; a missing or unreadable one is a DataError."""
    try:
        with np.load(path, allow_pickle=False) as index:
            classes = tuple(str(c) for c in index["classes"])
            train = LabelledImages(tuple(index["train_paths"].tolist()), index["train_labels"], classes)
            val = LabelledImages(tuple(index["val_paths"].tolist()), index["val_labels"], classes)
    except (OSError, ValueError, KeyError) as error:
        raise DataError(f"split index {path} cannot be read ({type(error).__name__}): run the study's data check "
                        "again (`imlgcn study resume` rewrites it) or delete it") from None
    return train, val
