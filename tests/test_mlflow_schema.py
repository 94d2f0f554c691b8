"""The SQLite MLflow store is created or upgraded by one process at a time, under a lock, with a copy kept;
a half-made store is named in one line (trainables/trial/mlflow_schema.py). Real MLflow, real processes."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from trainables.trial import mlflow_schema

PROCESSES, ROUNDS = 4, 10


def _opener(barrier, folder: str, rounds: int, through_project: bool, results) -> None:
    """Open a new store per round, all processes at the same moment (the barrier): through the project's
    store() or plain MLflow; each open reads the tracking and the model-registry store."""
    from mlflow.tracking import MlflowClient

    from trainables.trial.mlflow_runs import store

    for round_ in range(rounds):
        uri = f"sqlite:///{folder}/round{round_}.db"
        barrier.wait(timeout=120)
        try:
            if through_project:
                store(uri)
            client = MlflowClient(tracking_uri=uri)
            client.search_experiments()
            client.search_registered_models()
            results.put("ok")
        except Exception as error:  # the race: what MLflow raised, one line
            results.put(f"{type(error).__name__}: {str(error).splitlines()[0][:120]}")


def _open_together(folder: Path, through_project: bool) -> list[str]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(PROCESSES), context.Queue()
    workers = [context.Process(target=_opener, args=(barrier, str(folder), ROUNDS, through_project, results))
               for _ in range(PROCESSES)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=300) for _ in range(PROCESSES * ROUNDS)]
    for worker in workers:
        worker.join(timeout=60)
    return outcomes


@pytest.mark.slow
def test_four_processes_opening_one_new_store_at_once_all_succeed(tmp_path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "plain").mkdir()
    project = _open_together(tmp_path / "project", through_project=True)
    assert project == ["ok"] * (PROCESSES * ROUNDS), [o for o in project if o != "ok"]
    for round_ in range(ROUNDS):  # each store whole: every table, at MLflow's head revision
        tables, revision = mlflow_schema.schema_state(tmp_path / "project" / f"round{round_}.db")
        assert revision == mlflow_schema._revisions()[0] and not [t for t in tables if t.startswith("_alembic_tmp")]
    # the control: plain MLflow, the same opens (allowed to pass when the race does not happen this time)
    plain = _open_together(tmp_path / "plain", through_project=False)
    failed = [o for o in plain if o != "ok"]
    print(f"plain MLflow: {len(failed)} of {len(plain)} opens failed; through the project: 0 of {len(project)}; "
          f"first failures: {sorted(set(failed))[:3]}")


def _store_with_a_run(path: Path) -> str:
    from mlflow.tracking import MlflowClient

    from trainables.trial.mlflow_runs import store

    uri = f"sqlite:///{path}"
    store(uri)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(client.create_experiment("kept"))
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def test_a_store_one_revision_back_is_upgraded_once_with_its_copy_kept(tmp_path) -> None:
    from alembic import command
    from mlflow.store.db.utils import _get_alembic_config
    from mlflow.tracking import MlflowClient

    path = tmp_path / "mlflow.db"
    run_id = _store_with_a_run(path)
    uri = f"sqlite:///{path}"
    head, _ = mlflow_schema._revisions()
    command.downgrade(_get_alembic_config(uri), "-1")  # a store an earlier MLflow made: one migration behind
    _, back = mlflow_schema.schema_state(path)
    assert back != head
    older = path.with_name("mlflow.db.before-0000aaaa")  # an earlier upgrade's copy: only the last is kept
    older.write_bytes(b"old copy")
    said: list[str] = []
    mlflow_schema.ready(uri, say=said.append)
    mlflow_schema.ready(uri, say=said.append)  # upgraded once: the second open finds it at the head
    assert len(said) == 1 and back in said[0] and head in said[0], said
    copy = mlflow_schema.backup_path(path, back)
    assert mlflow_schema.schema_state(copy)[1] == back and not older.exists()
    assert mlflow_schema.schema_state(path)[1] == head
    assert MlflowClient(tracking_uri=uri).get_run(run_id).info.status == "FINISHED"  # the run is still there


def _half_migrated(path: Path) -> None:
    _store_with_a_run(path)
    with sqlite3.connect(path) as db:  # what an interrupted batch migration leaves
        db.execute("CREATE TABLE _alembic_tmp_tags (key VARCHAR(250), value VARCHAR(8000), run_uuid VARCHAR(32))")


def test_a_half_migrated_store_stops_train_in_one_line_before_ray_starts(tmp_path, tiny_data) -> None:
    path = tmp_path / "broken.db"
    _half_migrated(path)
    started = time.time()
    done = subprocess.run([str(Path(sys.executable).with_name("imlgcn")), "train", "--tracking-uri", f"sqlite:///{path}",
                           "--storage", str(tmp_path / "runs"), "--set", "dataset=coco", f"data_dir={tiny_data}",
                           "image_size=32", "backbone=test_resnet"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    took = time.time() - started
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert lines == [lines[-1]] and lines[-1].startswith(f"imlgcn: error: MLflow store {path} is half-migrated"), lines
    assert "_alembic_tmp_tags" in lines[-1] and "--tracking-uri" in lines[-1]
    assert "Ray" not in done.stderr and not (tmp_path / "runs").exists() and took < 60, took


def test_a_store_written_by_a_newer_mlflow_is_named(tmp_path) -> None:
    from trainables.config import ConfigError

    path = tmp_path / "mlflow.db"
    _store_with_a_run(path)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    with pytest.raises(ConfigError, match=r"revision ffffffffffff, which MLflow \S+ does not know"):
        mlflow_schema.check(f"sqlite:///{path}")


@pytest.mark.slow
def test_two_studies_started_together_on_one_new_default_store_both_finish(tmp_path, tiny_data) -> None:
    """Two `imlgcn study run` in one folder at once, each on the default store (./mlflow.db, new): one
    creates it under the lock, the other waits, and both studies finish."""
    exe = str(Path(sys.executable).with_name("imlgcn"))
    tiny = ["--set", "dataset=coco", f"data_dir={tiny_data}", "backbone=test_resnet", "image_size=32",
            "pretrain_epochs=1", "epochs=1", "gcn_hidden=16", "batch_size=16", "finetune_backbone=false"]
    drivers = [subprocess.Popen([exe, "study", "run", "--name", name, "--space", "small", "--screen", "0",
                                 "--num-samples", "1", "--eta", "0", "--storage", str(tmp_path / "studies"), *tiny],
                                cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in ("first", "second")]
    outputs = [driver.communicate(timeout=900) for driver in drivers]
    for driver, (_, stderr) in zip(drivers, outputs):
        assert driver.returncode == 0, stderr[-3000:]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    for name in ("first", "second"):
        experiment = client.get_experiment_by_name(name)
        finished = client.search_runs([experiment.experiment_id], "tags.stage = 'trial' and tags.level = 'finetune'")
        assert [r.info.status for r in finished] == ["FINISHED"]
