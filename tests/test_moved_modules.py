"""A study started by the code before the modules moved into rooms resumes with today's code.

Tune's saved state names its searcher, schedulers, console callback and trial functions by module path
(`study.search.StudySearch`, ...). The driver of the last commit before the move (BEFORE_MOVE) is killed
while its fine-tuning trial trains; `study resume` with today's code restores that Tune state (the old
paths import as the new modules: trainables/moved.py) and the trial resumes from its checkpoint.
"""

from __future__ import annotations

import importlib
import os
import pickle
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from study import MOVED as STUDY_MOVED
from tests.mlflow_template import migrated_db
from trainables import MOVED as TRAINABLES_MOVED

BEFORE_MOVE = "0453a5d827e72c2918189b2e75422f4ed68b4822"  # main before "Rooms by concept"
ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("old, new", sorted({**STUDY_MOVED, **TRAINABLES_MOVED}.items()))
def test_every_old_path_imports_as_the_new_module(old, new):
    assert importlib.import_module(old) is importlib.import_module(new)


def test_an_object_pickled_under_an_old_path_loads_as_todays_class():
    from study.levels.moasha import MOASHA

    old_bytes = pickle.dumps(MOASHA, protocol=0).replace(b"study.levels.moasha", b"study.moasha")  # text: no lengths
    assert b"study.moasha" in old_bytes and pickle.loads(old_bytes) is MOASHA


def _old_tree(tmp_path: Path) -> Path:
    """The project at BEFORE_MOVE, from this clone's history."""
    archive = tmp_path / "before.tar"
    made = subprocess.run(["git", "-C", str(ROOT), "archive", "-o", str(archive), BEFORE_MOVE],
                          capture_output=True, text=True)
    assert made.returncode == 0, f"commit {BEFORE_MOVE[:7]} not in this clone's history: {made.stderr.strip()}"
    tree = tmp_path / "before"
    with tarfile.open(archive) as tar:
        tar.extractall(tree, filter="data")
    return tree


@pytest.mark.slow
def test_a_study_killed_under_the_old_layout_resumes_under_the_new(tmp_path, tiny_data):
    old = _old_tree(tmp_path)
    store = f"sqlite:///{tmp_path}/mlflow.db"
    migrated_db(tmp_path / "mlflow.db")
    common = ["--storage", str(tmp_path / "studies"), "--tracking-uri", store]
    sets = ["--set", "dataset=coco", f"data_dir={tiny_data}", "backbone=test_resnet", "image_size=32",
            "pretrain_epochs=1", "epochs=40", "gcn_hidden=16", "batch_size=16"]
    before = subprocess.Popen([sys.executable, "-c", "from study.cli import entry_point; entry_point()", "study", "run",
                               "--name", "m", "--space", "small", "--screen", "0", "--num-samples", "1", *common, *sets],
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                              start_new_session=True, env={**os.environ, "PYTHONPATH": str(old)})
    try:
        deadline = time.time() + 300
        checkpoint = tmp_path / "studies" / "m" / "tune"
        # checkpoint_000002 exists: the driver registered checkpoint_000001 and, 2 s (the checkpoint gap) after
        # registering the first, saved Tune's state with one of them (every 1 s): the resume restores from it
        while time.time() < deadline and before.poll() is None and not any(
                checkpoint.glob("finetune/trial_*/checkpoint_000002")):
            time.sleep(0.2)
        assert before.poll() is None, f"the old driver ended before the kill: {before.stderr.read()[-3000:]}"
        os.killpg(before.pid, signal.SIGKILL)
        before.wait(timeout=60)
    finally:
        if before.poll() is None:
            os.killpg(before.pid, signal.SIGKILL)
    state = next(checkpoint.glob("finetune/tuner.pkl")).read_bytes()
    assert b"study.search" in state and b"study.levels" not in state  # written under the old paths
    after = subprocess.run([sys.executable, "-c", "from study.command.cli import entry_point; entry_point()",
                            "--verbose", "study", "resume", "m", *common], cwd=tmp_path, capture_output=True,
                           text=True, timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert after.returncode == 0, after.stderr[-4000:]
    assert "[train] resumed after epoch" in after.stderr  # Tune's state restored: the trial went on from its checkpoint
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("m")
    trials = client.search_runs([experiment.experiment_id], "tags.stage = 'trial'")
    assert [r.info.status for r in trials] == ["FINISHED"] and "mAP" in trials[0].data.metrics
