"""Shared fixtures: one tiny synthetic COCO-format data set per test session."""

from __future__ import annotations

import os

# The suite runs two tests at once on 2 cores (pytest -n 2), each training with as many torch threads as
# Ray gives it: OpenMP threads that spin while waiting steal the other test's core. PASSIVE waiting, set
# before torch loads and passed on to every `imlgcn` and Ray worker the tests start (ray_session.PASSED_ON),
# measured on 3 slow tests at -n 2: 206 s -> 172 s wall, paper-vg500's preset test 150 s -> 80 s.
# A user's own setting wins; a lone training is faster with the default (see study/driver/ray_session.py).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pytest  # noqa: E402
import torch  # noqa: E402

from trainables.config import TrialConfig
from trainables.data.synthetic import generate

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


# Longest first (seconds each file's tests took in a full run on 2 cores, -n 2). pytest-xdist's worksteal gives
# each process a contiguous half of the collection and an idle one takes the second half of the longest
# queue: with the slowest tests at the front, both processes start on long tests and short ones fill the
# end, instead of one process finishing a long end-to-end test alone after the other has run out of work.
LONGEST_FIRST = ("test_cluster.py",  # 310
                 "test_study_faults.py",  # 220
                 "test_presets.py",  # 215
                 "test_study_paths.py",  # 170
                 "test_study.py",  # 165
                 "test_plane_study.py",  # 120
                 "test_mlflow_schema.py",  # 110
                 "test_moved_modules.py",  # 60
                 "test_soak.py",  # 60
                 "test_moasha_stop.py",  # 56
                 "test_synthetic.py",  # 36
                 "test_cli.py",  # 19
                 "test_checkpoint_gap.py")  # 12


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: place for place, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order
