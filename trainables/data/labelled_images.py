"""What every reader returns: image paths and a label matrix; and the one error type for bad data.

Readers build `LabelledImages` from plain files (no torch), so the driver can check a data set before
Ray starts and pass it to workers cheaply.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataError(ValueError):
    """A data set file or folder is missing or unreadable; the one-line message names the path and the fix."""


@dataclass(frozen=True)
class LabelledImages:
    """Images and their labels: labels[i, c] is 1 (present), 0 (absent) or -1 (ignore, e.g. VOC difficult)."""

    paths: Sequence[str]  # absolute image paths (a tuple, or the split index's lazily decoded array)
    labels: np.ndarray  # N x C int8
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.paths)


def data_folder(data_dir: str | Path, layout: str) -> Path:
    """data_dir made absolute (paths must survive a change of working directory); it must exist."""
    root = Path(data_dir).absolute()
    if root.exists() and not root.is_dir():
        raise DataError(f"data folder {root} is a file, not a folder: pass the data set's folder as data_dir "
                        f"({layout} layout expected)")
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist: check data_dir ({layout} layout expected)")
    return root


def require_images(paths: tuple[str, ...], listing: Path, fix: str) -> None:
    """One error for all missing images, so a half-copied set is reported once, not image by image."""
    missing = [p for p in paths if not os.path.isfile(p)]
    folders = [p for p in missing if os.path.isdir(p)]
    if folders:
        raise DataError(f"image {folders[0]} of {listing.name} is a folder, not an image file: {fix}")
    if missing:
        raise DataError(f"image {missing[0]} is missing ({len(missing)} of {len(paths)} images of {listing.name} "
                        f"missing): {fix}")


@contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Reads of a data set's file inside this block: an OSError (a bad disk, a permission, a broken link)
    becomes one line naming the file, where Python's own error may name none (a failed read() after open)."""
    try:
        yield
    except OSError as error:
        raise DataError(f"{what} {path} cannot be read ({error.strerror or type(error).__name__}): make it readable "
                        "(its permissions, the disk), or copy it again") from None
