"""Studies under faults: a killed trial process, ASHA with a trial that keeps failing, a killed driver."""

import json
import os
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.mlflow_template import migrated_db
from tests.study_runs import EXE, imlgcn, runs, tiny_sets

pytestmark = pytest.mark.slow


def test_a_killed_trial_process_resumes_its_trial_from_the_checkpoint(tmp_path, tiny_data):
    """A one-worker fine-tuning trial trains in its Tune trial process: SIGKILL that process mid-training and
    Tune retries the trial from its last checkpoint, into the same MLflow run."""
    args = [EXE, "--verbose", "study", "run", "--name", "s4", "--space", "small", "--screen", "0", "--num-samples", "1",
            "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
            *tiny_sets(tiny_data, fast=False), "epochs=60"]
    migrated_db(tmp_path / "mlflow.db")
    driver = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)
    killed = None
    try:
        deadline = time.time() + 600
        while killed is None and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
            if _registered_checkpoint(tmp_path / "studies" / "s4" / "tune"):
                killed = _kill_trial_process(driver.pid)
        out, err = driver.communicate(timeout=600)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert killed is not None, "the trial finished before its process could be killed"
    assert driver.returncode == 0, err[-3000:]
    assert "each in its own trial process" in err
    assert any("(imlgcn_trial pid=" in line and "[train] epoch" in line for line in err.splitlines())  # in the trial
    assert "[train] resumed after epoch" in err  # the retry started from the last checkpoint, not epoch 0
    trials = runs(tmp_path, "s4", "trial", None)
    assert [r.info.status for r in trials] == ["FINISHED"]  # one run for the trial, finished
    steps = [m.step for m in MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db").get_metric_history(
        trials[0].info.run_id, "val_mAP")]
    assert steps.count(1) == 1 and set(steps) == set(range(1, 61)), steps  # epoch 1 was never trained again
    kept = list((tmp_path / "studies" / "s4" / "models").iterdir())
    assert len(kept) == 1 and (kept[0] / "model.safetensors").is_file()
    tune = tmp_path / "studies" / "s4" / "tune"  # per-epoch checkpoints pruned once finished
    assert list(tune.glob("*/trial_*")) and not [p for p in tune.glob("*/trial_*/checkpoint_*") if p.is_dir()]


def _registered_checkpoint(tune_dir: Path) -> bool:
    """True once Tune has taken a stage-3 checkpoint of the trial from its process.

    A trial persists each epoch's checkpoint when it reports, then waits until the driver has taken that
    result (synchronous reporting) before it trains on: once the second checkpoint folder exists, the
    driver has registered the first, and a retry resumes from it (not from epoch 0).
    """
    return any(tune_dir.glob("finetune/trial_*/checkpoint_000001"))


def _kill_trial_process(driver_pid: int) -> int | None:
    """SIGKILL the Tune trial process of this test's driver (found through its parent chain, so another
    test's Ray running at the same time is left alone)."""
    found = subprocess.run(["pgrep", "-f", "ray::ImplicitFunc"], capture_output=True, text=True).stdout.split()
    for pid in map(int, found):
        if driver_pid in _ancestors(pid):
            os.kill(pid, signal.SIGKILL)
            return pid
    return None


def _ancestors(pid: int) -> list[int]:
    chain = []
    while pid > 1:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                pid = int(handle.read().rsplit(")", 1)[1].split()[1])  # field 4: the parent pid
        except OSError:
            break
        chain.append(pid)
    return chain


def test_asha_study_then_a_trial_that_keeps_failing_is_recorded_and_the_study_goes_on(tmp_path, tiny_data):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    # the temp folder of the driver and of every Ray process it starts: a short path, as Ray's dashboard
    # binds a Unix socket in it (108 bytes at most; a pytest-xdist tmp_path is too long)
    scratch = Path(tempfile.mkdtemp(prefix="imlgcn-scratch-"))
    try:
        imlgcn(tmp_path, "study", "run", "--name", "s5", "--space", "small", "--screen", "0", "--num-samples", "3",
               "--objective", "map", *tiny_sets(str(data)), "epochs=3",
               env={**os.environ, "TMPDIR": str(scratch), "RAY_TMPDIR": "/tmp/ray"})
        left = sorted(p.name for p in scratch.glob("imlgcn-*"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    for run in runs(tmp_path, "s5", "trial", None):  # ASHA-stopped trials end FINISHED too
        assert run.info.status == "FINISHED" and run.data.tags["stopped_early"] in ("true", "false")
        epochs = len(client.get_metric_history(run.info.run_id, "val_mAP"))
        assert (epochs < 3) == (run.data.tags["stopped_early"] == "true")
    # a trial stopped inside its report never resumed to delete its checkpoint folder: once they leaked
    # into the system's temp folder, one per stopped trial (the size of the model and its optimizer)
    assert not left and not (tmp_path / "studies" / "s5" / "train" / "staging").exists()
    # Break the split index after stage 1 is cached: every later trial fails when it reads it.
    index = json.loads((tmp_path / "studies" / "s5" / "study.json").read_text())["split_index"]
    Path(index).write_bytes(b"broken")
    done = imlgcn(tmp_path, "study", "extend", "s5", "--num-samples", "2")
    assert done.stderr.count("failed after its retries") == 2
    assert "split index" in done.stderr and "cannot be read" in done.stderr  # the cause, in the trial's line
    failed = runs(tmp_path, "s5", "trial", "FAILED")
    assert len(failed) == 2 and len(runs(tmp_path, "s5", "trial")) == 3  # recorded, and the study finished
    assert not runs(tmp_path, "s5", "trial", "RUNNING")
    lines = done.stdout.splitlines()  # the report still came out: its answer, then the front
    assert "report: " in done.stderr and lines[0].startswith("On this data") and lines[1].startswith("Pareto front: ")


def test_a_driver_killed_while_screening_resumes_to_exactly_the_asked_trials(tmp_path, tiny_data):
    """SIGKILL the driver during level 1; `study resume` finishes both levels with one run per trial. The
    screening runs as Tune runs of 15 trials (a sweep's 2,000): killed in the first, resumed over the rest."""
    asked = 40
    args = [EXE, "study", "run", "--name", "s6", "--space", "small", "--screen", str(asked), "--num-samples", "2",
            "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
            *tiny_sets(tiny_data)]
    migrated_db(tmp_path / "mlflow.db")
    chunked = {**os.environ, "IMLGCN_SCREEN_CHUNK": "15"}
    driver = subprocess.Popen(args, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True, env=chunked)
    try:
        deadline = time.time() + 600
        while time.time() < deadline and driver.poll() is None and _count(tmp_path, "screen") < 10:
            time.sleep(0.5)
        assert driver.poll() is None and _count(tmp_path, "screen") < asked, "screening ended before the kill"
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait(timeout=60)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    done = imlgcn(tmp_path, "study", "resume", "s6", env=chunked)
    screened = runs(tmp_path, "s6", "trial", None, level="screen")
    assert len(screened) == asked and len({r.data.tags["trial_id"] for r in screened}) == asked
    assert f"screened {asked}/{asked} head configurations" in done.stderr  # the Tune runs counted as one
    # the last line names the study's best screened trial, not the best of the last Tune run
    last = [line for line in done.stderr.splitlines() if f"screened {asked}/{asked} head" in line][-1]
    best = max(r.data.metrics["mAP"] for r in screened)
    named = last.rsplit("(trial ", 1)[1].split(")")[0]
    assert f"best mAP {best:.2f} (trial {named})" in last
    assert [r.data.metrics["mAP"] for r in screened if r.data.tags["trial_id"] == named] == [best]
    assert "-inf" not in done.stderr and "(trial )" not in done.stderr
    assert "too few promoted configurations ran all their epochs (" in done.stderr  # 2 fine-tuned, not 3
    assert (tmp_path / "studies" / "s6" / "tune" / "screen-r2").is_dir()  # 10 before the kill, then 15 + 15
    assert all(r.info.status == "FINISHED" for r in screened)
    tuned = runs(tmp_path, "s6", "trial", None, level="finetune")
    assert len(tuned) == 2 and all(r.info.status == "FINISHED" for r in tuned)


def _count(tmp_path, level: str) -> int:
    import sqlite3

    try:
        with sqlite3.connect(f"file:{tmp_path / 'mlflow.db'}?mode=ro", uri=True, timeout=1) as db:
            return int(db.execute("select count(*) from tags where key = 'level' and value = ?", (level,)).fetchone()[0])
    except sqlite3.Error:  # not created yet, or locked for a moment
        return 0
