"""Shared fixtures: one tiny synthetic COCO-format data set per test session."""

from __future__ import annotations

import pytest
import torch

from trainables.config import TrialConfig
from trainables.synthetic import generate

# One thread: OpenMP's spinning threads slow down by 10-100x when another process holds a core.
torch.set_num_threads(1)

TINY = dict(classes="person,car,cup,chair,dining table", train_images=48, val_images=24, image_size=32, seed=0)


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> str:
    """A 5-class, 48 + 24 image, 32-px synthetic set (written once, read by many tests)."""
    out = tmp_path_factory.mktemp("tiny") / "synthetic"
    generate(out, **TINY)
    return str(out)


@pytest.fixture()
def tiny_config(tiny_data) -> TrialConfig:
    """A config that trains in seconds on `tiny_data` (coco reader on the synthetic folder)."""
    return TrialConfig(dataset="coco", data_dir=tiny_data, image_size=32, backbone="test_resnet",
                       pretrain_epochs=1, epochs=1, batch_size=16, gcn_hidden=16, seed=0)
