"""Studies end to end: real Ray Tune + OptunaSearch, real Ray Train, real SQLite MLflow, tiny data."""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from study.reports.pareto import pareto_front
from tests.mlflow_template import migrated_db
from trainables.config import TrialConfig
from trainables.trial.trainable import SCREENED_PARAMS

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("imlgcn"))


def tiny_sets(data: str, fast: bool = True) -> list[str]:
    return ["--set", "dataset=coco", f"data_dir={data}", "backbone=test_resnet", "image_size=32",
            "pretrain_epochs=1", "epochs=1", "gcn_hidden=16", "batch_size=16", f"finetune_backbone={not fast}"]


def imlgcn(tmp_path, *args, timeout=900, check=True, db="mlflow.db", env=None) -> subprocess.CompletedProcess:
    if check:  # a command expected to succeed starts from a migrated store (tests.mlflow_template)
        migrated_db(tmp_path / db)
    done = subprocess.run([EXE, *args, "--storage", str(tmp_path / "studies"), "--tracking-uri",
                           f"sqlite:///{tmp_path}/{db}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, done.stderr[-4000:]
    return done


def runs(tmp_path, name: str, stage: str, status: str | None = "FINISHED", db: str = "mlflow.db",
         level: str | None = None) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/{db}")
    experiment = client.get_experiment_by_name(name)
    query = f"tags.stage = '{stage}'" + (f" and tags.level = '{level}'" if level else "")
    found = client.search_runs([experiment.experiment_id], query, max_results=5000)
    return [r for r in found if status is None or r.info.status == status]


PAPER_COCO_ON_CPU = ["pretrained=false", "use_gpu=false", "pca_dim=0", "loader_workers=0"]


def test_study_run_report_and_extend(tmp_path, tiny_data):
    """The paper-coco preset on a tiny COCO-format folder (small backbone), then extend, export and predict."""
    done = imlgcn(tmp_path, "study", "run", "--name", "s1", "--preset", "paper-coco", "--space", "small",
                  "--size", "params", "--screen", "12", "--num-samples", "3", *tiny_sets(tiny_data), *PAPER_COCO_ON_CPU)
    screened = runs(tmp_path, "s1", "trial", level="screen")
    assert len(screened) == 12 and len({r.data.tags["trial_id"] for r in screened}) == 12
    # a screened run logs its head and searched keys, the parent run the whole base config
    assert all(set(r.data.params) == set(SCREENED_PARAMS) for r in screened)
    assert set(runs(tmp_path, "s1", "study")[0].data.params) == {f.name for f in fields(TrialConfig)}
    assert "promoting 3 screened configurations" in done.stderr
    trials = runs(tmp_path, "s1", "trial", level="finetune")
    assert len(trials) == 3 and len({r.data.tags["trial_id"] for r in trials}) == 3
    head = ("embedding", "tau", "p", "gcn_lr")  # every fine-tuned configuration was screened first
    assert {tuple(r.data.params[k] for k in head) for r in trials} <= {tuple(r.data.params[k] for k in head)
                                                                       for r in screened}
    for run in trials:
        assert {"mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "n_params", "wall_time_s"} <= set(run.data.metrics)
        assert {"tau", "p", "embedding", "gcn_lr"} <= set(run.data.params) and run.data.tags["ray_node_id"]
    assert len(runs(tmp_path, "s1", "pretrain")) == 1 and len(runs(tmp_path, "s1", "study")) == 1
    baseline = runs(tmp_path, "s1", "baseline", level="finetune")
    assert len(runs(tmp_path, "s1", "baseline", level="screen")) == 1  # screening's own reference
    assert len(baseline) == 1 and all(r.data.metrics["direct_mAP"] == pytest.approx(baseline[0].data.metrics["mAP"])
                                      for r in trials)  # every trial's reference is the same-budget baseline
    assert not runs(tmp_path, "s1", "trial", "RUNNING")
    csv = pd.read_csv(tmp_path / "studies" / "s1" / "report" / "trials.csv", dtype={"trial_id": str})
    complete = [r for r in trials if r.data.tags.get("stopped_early") != "true"]
    values = pd.DataFrame([{"mAP": r.data.metrics["mAP"], "n_params": r.data.metrics["n_params"],
                            "trial_id": r.data.tags["trial_id"]} for r in complete]).sort_values("trial_id")
    expected = dict(zip(values.trial_id, pareto_front(values)))  # the front is the fine-tuned one
    assert {t: p for t, p in zip(csv.trial_id, csv.pareto) if p} == {t: p for t, p in expected.items() if p}
    assert len(csv) == 15 and not csv[csv.level == "screen"].pareto.any()
    assert (tmp_path / "studies" / "s1" / "report" / "pareto.png").stat().st_size > 0
    assert "mAP" in done.stdout  # the front printed as a table

    again = subprocess.run([EXE, "study", "run", "--name", "s1", "--storage", str(tmp_path / "studies")],
                           cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "study extend s1" in again.stderr and "resume" not in again.stderr  # it finished

    # The MLflow store moves (a server at a new address over the same store): extend --tracking-uri follows it.
    shutil.move(tmp_path / "mlflow.db", tmp_path / "moved.db")
    done = imlgcn(tmp_path, "study", "extend", "s1", "--num-samples", "2", "--screen", "4", db="moved.db")
    assert "MLflow store moved" in done.stderr and "already done" in done.stderr  # stage 1 reused
    trials = runs(tmp_path, "s1", "trial", db="moved.db", level="finetune")
    assert len(trials) == 5 and len({r.data.tags["trial_id"] for r in trials}) == 5  # new trials logged there
    assert len(runs(tmp_path, "s1", "trial", db="moved.db", level="screen")) == 16
    assert len(runs(tmp_path, "s1", "pretrain", None, db="moved.db")) == 1
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to the old address
    _ids_point_at_each_other(tmp_path, "moved.db")
    listing = subprocess.run([EXE, "study", "list", "--storage", str(tmp_path / "studies")],
                             capture_output=True, text=True, timeout=120).stdout
    assert listing.splitlines()[0].split("\t")[:3] == ["study", "status", "trials"]
    assert listing.splitlines()[1].startswith("s1\tfinished\t5 fine-tuned, 16 screened")
    _export_front_and_predict(tmp_path, tiny_data, db="moved.db")


def _ids_point_at_each_other(tmp_path, db: str) -> None:
    """Optuna (read with its own load_study), Tune and MLflow ids link both ways; the pareto tags match
    the report."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(tmp_path / "studies" / "s1" / "optuna.journal")))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/{db}")
    for level, count in (("screen", 16), ("finetune", 5)):
        study = optuna.load_study(study_name=f"s1:{level}", storage=storage)
        assert study.metric_names == ["mAP", "n_params"]  # Optuna Dashboard shows names, not "Objective 0"
        ended = [t for t in study.trials if t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)]
        assert len(ended) == count
        for trial in ended:
            run = client.get_run(trial.user_attrs["mlflow_run_id"])
            assert run.data.tags["trial_id"] == trial.user_attrs["tune_trial_id"]
            assert run.data.tags["optuna_trial"] == str(trial.number) and run.data.tags["optuna_study"] == f"s1:{level}"
    csv = pd.read_csv(tmp_path / "studies" / "s1" / "report" / "trials.csv", dtype={"trial_id": str})
    for run_id, on_front, level in zip(csv.run_id, csv.pareto, csv.level):
        tags = client.get_run(run_id).data.tags  # only fine-tuned runs can be on the front, and carry the tag
        assert tags.get("pareto") == (None if level == "screen" else "true" if on_front else "false")
    experiment = client.get_experiment_by_name("s1")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"  # the UI opens on the runs
    parent = runs(tmp_path, "s1", "study", db=db)[0]
    assert parent.data.metrics["trials_finished"] == 5 and parent.data.metrics["trials_screened"] == 16


def _export_front_and_predict(tmp_path, tiny_data, db):
    """keep_checkpoints=front kept exactly the front's models; export registers them; predict reproduces mAP."""
    import json

    import numpy as np

    from trainables.data.datasets import read_split
    from trainables.training.metrics import multilabel_metrics

    csv = pd.read_csv(tmp_path / "studies" / "s1" / "report" / "trials.csv", dtype={"trial_id": str})
    front = set(csv.trial_id[csv.pareto])
    assert {p.name for p in (tmp_path / "studies" / "s1" / "models").iterdir()} == front
    exported = [json.loads(line) for line in imlgcn(tmp_path, "study", "export", "s1", "--front", db=db).stdout.splitlines()]
    assert {row["trial_id"] for row in exported} == front and len({row["model"] for row in exported}) == len(front)
    again = [json.loads(line) for line in imlgcn(tmp_path, "study", "export", "s1", "--front", db=db).stdout.splitlines()]
    assert again == exported  # exporting twice registers nothing new
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/{db}")
    assert [e["n_params"] for e in exported] == sorted(e["n_params"] for e in exported)  # versions smallest first
    best = client.get_model_version_by_alias("imlgcn-s1", "best")
    smallest = client.get_model_version_by_alias("imlgcn-s1", "smallest")
    assert best.tags["mAP"] == f"{max(e['mAP'] for e in exported):.2f}"
    assert int(smallest.tags["n_params"]) == min(e["n_params"] for e in exported)
    for row in exported:  # each exported model is a logged model of its trial's run (the UI's Models column)
        run = next(r for r in runs(tmp_path, "s1", "trial", db=db) if r.data.tags["trial_id"] == row["trial_id"])
        assert [o.model_id for o in run.outputs.model_outputs]
    val = read_split("coco", tiny_data, "val")
    chosen = exported[0]
    predicted = subprocess.run([EXE, "predict", "--model", chosen["model"], "--json", "--threshold", "0",
                                "--tracking-uri", f"sqlite:///{tmp_path}/{db}", *val.paths],
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    rows = [json.loads(line) for line in predicted.stdout.splitlines()]
    assert [r["image"] for r in rows] == list(val.paths)
    scores = np.array([[next(x["probability"] for x in r["labels"] if x["label"] == c) for c in val.classes]
                       for r in rows])
    assert multilabel_metrics(scores, val.labels)["mAP"] == pytest.approx(chosen["mAP"], abs=0.05)
    table = subprocess.run([EXE, "predict", "--model", chosen["model"], "--tracking-uri",
                            f"sqlite:///{tmp_path}/{db}", val.paths[0]], cwd=tmp_path, capture_output=True,
                           text=True, timeout=300)
    assert table.returncode == 0 and table.stdout.startswith(val.paths[0])


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
    assert "report: " in done.stderr and done.stdout.startswith("Pareto front: ")  # the report still came out


def test_compare_arms_over_seeds_logs_one_run_each_and_the_table(tmp_path, tiny_data):
    """`imlgcn compare` on Ray: every (arm, seed) is one MLflow run under the parent; the table is printed
    and logged on the parent run with the paired differences."""
    migrated_db(tmp_path / "mlflow.db")
    done = subprocess.run([EXE, "compare", "--name", "c", "--arms", "paper", "--seeds", "0", "1",
                           "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                           *tiny_sets(tiny_data)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("compare paper: 4 arms x 2 training seeds") and len(lines) == 6
    assert [line.split()[0] for line in lines[2:]] == ["direct", "word", "fi", "fpca"]
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("compare-c")
    arms = client.search_runs([experiment.experiment_id], "tags.stage = 'compare'")
    assert sorted((r.data.tags["arm"], r.data.tags["seed"]) for r in arms) == sorted(
        (arm, seed) for arm in ("direct", "word", "fi", "fpca") for seed in ("0", "1"))
    assert all(r.info.status == "FINISHED" and r.data.params["seed"] == r.data.tags["seed"] for r in arms)
    direct = {r.data.tags["seed"]: r.data.metrics["mAP"] for r in arms if r.data.tags["arm"] == "direct"}
    for run in arms:  # every run's reference is its seed's same-budget direct model
        assert run.data.metrics["direct_mAP"] == pytest.approx(direct[run.data.tags["seed"]], abs=1e-6)
    parent = client.search_runs([experiment.experiment_id], "tags.stage = 'compare-set'")[0]
    assert parent.info.status == "FINISHED" and "fpca.d_mAP" in parent.data.metrics
    logged = {f.path for f in client.list_artifacts(parent.info.run_id, "compare")}
    assert logged == {"compare/compare.txt", "compare/compare.csv", "compare/results.json"}


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


OWN_STAGE1_SPACE = """
import sys
import search_spaces
from search_spaces import SearchSpace, paper
from study.command.cli import main

def own_stage1(trial):
    trial.suggest_float("pretrain_lr", 1e-3, 2e-3)  # a stage-1 setting: each trial pretrains its own backbone
    return paper.finetune_space(trial)

search_spaces.SPACES["own-stage1"] = SearchSpace(paper.space, own_stage1)
sys.exit(main(sys.argv[1:]))
"""


def test_trials_that_pretrain_their_own_backbone_finish(tmp_path, tiny_data):
    """A space that searches a stage-1 setting: the trial's pretraining epochs carry no mAP / n_params,
    which Tune's searcher requires of every result (the benchmark's naive study once failed on that)."""
    migrated_db(tmp_path / "mlflow.db")
    done = subprocess.run([sys.executable, "-c", OWN_STAGE1_SPACE, "study", "run", "--name", "own",
                           "--space", "own-stage1", "--screen", "0", "--num-samples", "2", "--eta", "0",
                           "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                           *tiny_sets(tiny_data)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr[-4000:]
    finished = runs(tmp_path, "own", "trial")
    assert len(finished) == 2 and all("mAP" in r.data.metrics for r in finished)
    assert len({r.data.params["pretrain_lr"] for r in finished}) == 2


def test_the_direct_model_only_path_in_a_study_and_a_compare(tmp_path, tiny_data):
    """embedding=none with epochs=0 (asl-coco): the stage-1 direct model is every trial's and every arm's
    result; the study skips screening (no head to judge) and exits 0 with its metrics."""
    direct_only = [*tiny_sets(tiny_data, fast=False), "embedding=none", "epochs=0"]
    done = imlgcn(tmp_path, "study", "run", "--name", "d", "--screen", "5", "--num-samples", "1", *direct_only)
    assert "skips screening" in done.stderr and "Pareto front: 1 of 1" in done.stdout
    stage1 = runs(tmp_path, "d", "pretrain")[0].data.metrics["mAP"]
    trials = runs(tmp_path, "d", "trial")
    assert len(trials) == 1 and not runs(tmp_path, "d", "trial", level="screen")
    for run in trials:  # nothing trains after stage 1: the trial is the stored direct model
        assert run.data.metrics["mAP"] == pytest.approx(stage1) == run.data.metrics["direct_mAP"]
    arms = tmp_path / "arms.yaml"
    arms.write_text("direct: {}\ndirect-lr: {pretrain_lr: 0.01}\n")
    migrated_db(tmp_path / "mlflow.db")
    done = subprocess.run([EXE, "compare", "--name", "c", "--arms", str(arms), "--seeds", "0", "1", "--storage",
                           str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", *direct_only],
                          cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith(f"compare {arms}: 2 arms x 2 training seeds")
    assert [line.split()[0] for line in lines[2:]] == ["direct", "direct-lr"]
