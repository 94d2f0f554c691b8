"""Image files: a cheap check that they open, and the torch Dataset that loads them for training.

An unreadable image is a `DataError` naming the file, on the driver (checked before Ray starts) and in a
worker (a file that broke later stops the run, rather than silently changing the data set).
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from trainables.data.labelled_images import DataError, LabelledImages


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
