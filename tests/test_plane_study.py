"""The accuracy-versus-size plane end to end (`--space sizes`): one stage 1 and one direct model per
(backbone, resolution), trained before the trials from one drawn image set; screening on each point's own
features; the front over trials and direct models; the answer in the printed front, front.txt and the HTML."""

import pandas as pd
import pytest

from tests.mlflow_template import migrated_db
from tests.page_text import page_text

from search_spaces.sizes import PLANE
from tests.study_runs import imlgcn, runs

pytestmark = pytest.mark.slow

TINY = ["synthetic_train_images=48", "synthetic_val_images=24", "pretrain_epochs=1", "epochs=1",
        "head_warmup_epochs=0", "gcn_hidden=16", "batch_size=16"]


def test_a_plane_study_trains_every_point_and_answers_the_question(tmp_path, monkeypatch):
    monkeypatch.setenv("IMLGCN_CACHE", str(tmp_path / "cache"))
    done = imlgcn(tmp_path, "study", "run", "--name", "plane", "--space", "sizes", "--screen", "12", "--num-samples",
                  "2", "--eta", "0", "--set", *TINY)
    points = {f"{b}@{s}px" for b in PLANE["backbone"] for s in PLANE["image_size"]}
    pretrain = runs(tmp_path, "plane", "pretrain")
    assert sorted(r.info.run_name for r in pretrain) == sorted(f"pretrain-{p}" for p in points)
    directs = runs(tmp_path, "plane", "baseline", level="finetune")
    assert {(r.data.params["backbone"], int(r.data.params["image_size"])) for r in directs} == {
        (b, s) for b in PLANE["backbone"] for s in PLANE["image_size"]}
    sizes = {r.data.params["backbone"]: r.data.metrics["n_params_inference"] for r in directs}
    assert max(sizes.values()) >= 10 * min(sizes.values())
    assert len(list((tmp_path / "cache" / "synthetic").iterdir())) == 1  # one image set for every resolution
    screened = runs(tmp_path, "plane", "trial", level="screen")
    assert len(screened) == 12
    for run in screened:  # each head judged on its own point: its size is its backbone's
        own = [d for d in directs if d.data.params["backbone"] == run.data.params["backbone"]
               and d.data.params["image_size"] == run.data.params["image_size"]][0]
        assert run.data.metrics["direct_mAP"] <= 100 and run.data.params["image_size"] in ("32", "64")
        assert abs(run.data.metrics["n_params_inference"] - own.data.metrics["n_params_inference"]) <= 27  # bias
    front = done.stdout
    answer, title = front.splitlines()[:2]  # the answer first, and again below the per-point gains
    assert title.startswith("Pareto front over 2 fine-tuned trials and 6 direct models (12 head configurations")
    for point in points:
        assert f"direct {point}" in front
    assert answer == front.strip().splitlines()[-1] and "; one seed each, which cannot tell " in answer
    assert answer.startswith(("IML-GCN on ", "The direct model on ", "No direct model in the study reaches")), answer
    report = tmp_path / "studies" / "plane" / "report"
    assert (report / "front.txt").read_text().strip().splitlines()[-1] == answer
    assert (report / "compare-arms.yaml").is_file() and (report / "compare-base.yaml").is_file()
    assert answer in page_text((report / "pareto.html").read_text())  # as read on the page (HTML-escaped there)
    trials = pd.read_csv(report / "trials.csv")
    assert "dominated_by" in trials and set(trials["image_size"]) <= {32, 64}


def test_compare_sizes_crosses_backbones_with_heads_and_answers_with_seeds(tmp_path, tiny_data):
    """`imlgcn compare --arms sizes`: direct and fpca on each backbone of the plane, stage 1 and the baseline
    trained once per (seed, backbone) before the arms; the table ends with the sizes section and its answer."""
    import subprocess

    from mlflow.tracking import MlflowClient

    from tests.study_runs import EXE, tiny_sets

    migrated_db(tmp_path / "mlflow.db")
    done = subprocess.run([EXE, "compare", "--name", "z", "--arms", "sizes", "--seeds", "0", "1",
                           "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
                           *tiny_sets(tiny_data)], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "on 3 backbones / resolutions" in done.stderr
    references = list((tmp_path / "studies" / "z" / "train" / "references").glob("trial_*"))
    assert len(references) == 6  # (seed, backbone) pairs: no arm pretrains its own backbone
    text = done.stdout
    assert text.startswith("compare sizes: 6 arms x 2 training seeds")
    for backbone in PLANE["backbone"]:
        assert f"  direct-{backbone}: {backbone}@32px, " in text and f"  fpca-{backbone} - direct-{backbone}: " in text
    assert text.strip().splitlines()[-1].startswith(("fpca-", "No direct arm reaches"))
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    experiment = client.get_experiment_by_name("compare-z")
    arms = client.search_runs([experiment.experiment_id], "tags.stage = 'compare'")
    assert len(arms) == 12 and {r.data.params["backbone"] for r in arms} == set(PLANE["backbone"])
    for run in arms:  # each arm compares with its own backbone's same-budget direct model of its seed
        own = [r for r in arms if r.data.tags["arm"] == f"direct-{r.data.params['backbone']}"
               and r.data.params["backbone"] == run.data.params["backbone"] and r.data.tags["seed"] == run.data.tags["seed"]]
        assert run.data.metrics["direct_mAP"] == pytest.approx(own[0].data.metrics["mAP"], abs=1e-6)
