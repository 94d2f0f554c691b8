"""Other study paths end to end: `imlgcn compare` over seeds, trials that pretrain their own backbone, the
direct-model-only path."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.mlflow_template import migrated_db
from tests.study_runs import EXE, imlgcn, runs, tiny_sets

pytestmark = pytest.mark.slow


def test_compare_arms_over_seeds_logs_one_run_each_and_the_table(tmp_path, tiny_data):
    """`imlgcn compare` on Ray: every (arm, seed) is one MLflow run under the parent; the table is printed
    and logged on the parent run with the paired differences."""
    migrated_db(tmp_path / "mlflow.db")
    done = subprocess.run([EXE, "compare", "--name", "c", "--arms", "paper", "--seeds", "0", "1",
                           "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                           *tiny_sets(tiny_data)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("compare paper: 4 arms x 2 training seeds") and len(lines) == 7
    assert [line.split()[0] for line in lines[2:6]] == ["direct", "word", "fi", "fpca"]
    assert lines[6].startswith("mAP against direct (95 % interval holding 0 = the same): ")  # the verdict last
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
    assert [line.split()[0] for line in lines[2:-1]] == ["direct", "direct-lr"]
    assert lines[-1].startswith("mAP against direct (95 % interval holding 0 = the same): ")
