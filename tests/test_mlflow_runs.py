"""mlflow_runs against real SQLite stores: a model registered in one store is found there, whatever
store MLflow's process-wide default (./mlflow.db in the working directory) points at."""

import os
import subprocess
import sys

SCRIPT = """
import sys, tempfile
from pathlib import Path
from trainables.trial.mlflow_runs import store

uri = sys.argv[1]
runs = store(uri)
experiment = runs.experiment_id("e")
run_id = runs.create(experiment, "r", {"stage": "trial"}, {})
folder = Path(tempfile.mkdtemp()) / "model"
folder.mkdir()
(folder / "weights.txt").write_text("w")
runs.registered_versions("m", "a model")
version = runs.register_model("m", experiment, run_id, folder, {"trial_id": "t"}, "model")
got = runs.download(f"models:/m/{version.version}", tempfile.mkdtemp())
print(sorted(p.name for p in got.rglob("*") if p.is_file()))
"""


def test_register_and_download_use_the_store_not_the_working_directory_default(tmp_path):
    """MLflow 3.17 resolves models:/ URIs through its process-wide URI; with an ./mlflow.db beside the
    command (the default store) and the study in another, export and predict must still use the latter."""
    (tmp_path / "other").mkdir()
    default = subprocess.run([sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path}/mlflow.db"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert default.returncode == 0, default.stderr[-3000:]
    moved = subprocess.run([sys.executable, "-c", SCRIPT, f"sqlite:///{tmp_path}/other/moved.db"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert "weights.txt" in moved.stdout


def test_finished_screened_trials_are_counted_from_their_markers(tmp_path):
    """A resumed screening counts its finished trials from the marker folder (not by reading every run
    back): a marked run counts; a process killed after its run FINISHED but before marking it leaves its
    intent, and MLflow is asked about that trial alone; an intent without a run does not count."""
    from tests.mlflow_template import migrated_db
    from trainables.trial.mlflow_runs import RunLog

    migrated_db(tmp_path / "mlflow.db")
    runs = RunLog(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = runs.experiment_id("e")
    parent = runs.create(experiment, "study", {"stage": "study"}, {})
    marked, query = tmp_path / "runs" / "screen", "tags.level = 'screen' and tags.tune_run = 'screen'"
    for trial in ("a", "b", "c"):
        runs.record_trial(str(marked), trial, experiment, parent, {"tau": 0.4}, {"mAP": 50.0},
                          {"level": "screen", "tune_run": "screen"}, 0)
    assert runs.finished_trials(str(marked), experiment, query) == {"a", "b", "c"}
    assert not list(marked.glob("*.intent"))  # removed once marked
    (marked / "c.run").unlink()  # killed between FINISHED and the marker
    (marked / "c.intent").touch()
    (marked / "d.intent").touch()  # killed before its run was created
    assert runs.finished_trials(str(marked), experiment, query) == {"a", "b", "c"}
    assert runs.finished_trials(str(marked), experiment, "tags.level = 'screen' and tags.tune_run = 'other'") == {"a", "b"}
    every = runs.search(experiment, f"{query} and attributes.status = 'FINISHED'")  # what a full read finds
    assert {run.data.tags["trial_id"] for run in every} == {"a", "b", "c"}


def test_screened_runs_read_from_their_markers_equal_the_mlflow_runs(tmp_path):
    """The report reads a sweep's screened runs from their markers: the same run ids, params, metrics,
    tags and end times as MLflow holds; a trial killed between FINISHED and its marker (an intent) is read
    from MLflow, one killed before its run existed is absent, and markers of an earlier version (run id
    only) make the folder's runs be read from MLflow."""
    from tests.mlflow_template import migrated_db
    from trainables.trial.mlflow_runs import RunLog
    from trainables.trial.run_markers import trial_run_id

    migrated_db(tmp_path / "mlflow.db")
    runs = RunLog(f"sqlite:///{tmp_path}/mlflow.db")
    experiment = runs.experiment_id("e")
    parent = runs.create(experiment, "study", {"stage": "study"}, {})
    folder, query = tmp_path / "runs" / "screen", "tags.level = 'screen' and tags.tune_run = 'screen'"
    for n, trial in enumerate(("a", "b", "c")):
        runs.record_trial(str(folder), trial, experiment, parent, {"tau": 0.1 * n, "embedding": "fpca"},
                          {"mAP": 50.0 + n, "n_params": 1000 + n}, {"level": "screen", "tune_run": "screen"}, 1_000 * n)
    mlflow_view = {run.run_id: run for run in runs.search_logged(experiment, f"{query} and attributes.status = 'FINISHED'")}
    marker_view = {run.run_id: run for run in runs.recorded_trials(str(folder), experiment, query)}
    assert marker_view == mlflow_view and len(marker_view) == 3
    assert trial_run_id(str(folder), "b") == runs.search_logged(experiment, "tags.trial_id = 'b'")[0].run_id
    (folder / "c.run").unlink()  # killed between FINISHED and the marker
    (folder / "c.intent").touch()
    (folder / "d.intent").touch()  # killed before its run was created
    assert {run.run_id: run for run in runs.recorded_trials(str(folder), experiment, query)} == mlflow_view
    (folder / "a.run").write_text(trial_run_id(str(folder), "a"))  # as an earlier version marked it
    assert {run.run_id: run for run in runs.recorded_trials(str(folder), experiment, query)} == mlflow_view
