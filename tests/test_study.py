"""Studies end to end: real Ray Tune + OptunaSearch, real Ray Train, real SQLite MLflow, tiny data."""

import shutil
import subprocess
from dataclasses import fields

import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from study.reports.ties import front
from trainables.config import TrialConfig
from trainables.trial.trainable import SCREENED_PARAMS

from tests.study_runs import EXE, PAPER_COCO_ON_CPU, imlgcn, runs, tiny_sets

pytestmark = pytest.mark.slow


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
    expected = dict(zip(values.trial_id, front(values["mAP"], values["n_params"])))  # the fine-tuned front, 1 % ties
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
