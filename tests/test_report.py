"""The study report against a real SQLite MLflow store laid out as the driver logs a study."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric, Param

from study.reports.ties import front as pareto_front
from study.reports.front_table import DOMINATED, dominated_by, format_front
from study.reports.report import baseline_table, trial_table, write_report
from trainables.config import TrialConfig
from trainables.trial.mlflow_runs import store as mlflow_store

STUDY = "demo-study"
# trial_id: (embedding, tau, p, pca_dim, mAP, n_params)
TRIALS = {
    "t0": ("fi", 0.1, 0.2, 0, 60.0, 11.2e6),
    "t1": ("fpca", 0.3, 0.4, 5, 62.0, 11.4e6),  # 1.8 % larger than t0: not the same size (study.reports.ties)
    "t2": ("fpca", 0.3, 0.4, 5, 62.0, 11.4e6),  # exact tie with t1: both on the front
    "t3": ("word", 0.5, 0.5, 0, 58.0, 11.5e6),  # dominated by t1 (0.9 % smaller: the same size, more accurate)
    "t4": ("fi", 0.2, 0.3, 0, 65.0, 25.0e6),
    "t5": ("fpca", 0.7, 0.1, 3, 64.0, 30.0e6),  # dominated by t4
    "t6": ("word", 0.1, 0.9, 0, 70.0, 90.0e6),
    "t7": ("fi", 0.4, 0.6, 0, 55.0, 11.2e6),  # dominated by t0
}
FRONT = ["t0", "t1", "t2", "t4", "t6"]


def _log_run(client: MlflowClient, experiment: str, tags: dict, params: dict, metrics: dict,
             status: str = "FINISHED", end_time: int | None = None) -> str:
    run = client.create_run(experiment, tags=tags)
    now = int(time.time() * 1000)
    client.log_batch(run.info.run_id, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
                     params=[Param(k, str(v)) for k, v in params.items()])
    client.set_terminated(run.info.run_id, status, end_time=end_time)
    return run.info.run_id


def _trial(client: MlflowClient, experiment: str, parent: str, trial_id: str, values: tuple,
           status: str = "FINISHED", end_time: int | None = None) -> str:
    embedding, tau, p, pca_dim, m_ap, n_params = values
    config = TrialConfig(embedding=embedding, tau=tau, p=p, pca_dim=pca_dim).to_dict()
    metrics = dict(mAP=m_ap, CP=50, CR=40, CF1=44, OP=60, OR=55, OF1=57, n_params=n_params, wall_time_s=12.5)
    tags = {"stage": "trial", "trial_id": trial_id, "ray_node_id": "node0", "mlflow.parentRunId": parent}
    return _log_run(client, experiment, tags, config, metrics, status, end_time)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """One study: a parent run, 2 baseline runs, 8 finished trials, a failed one and a stale duplicate."""
    tmp_path = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment(STUDY, artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, tags={"stage": "study"}).info.run_id
    for backbone, m_ap, n_params, level in (("resnet18", 57.0, 11.2e6, "finetune"), ("resnet50", 66.0, 23.6e6, "screen")):
        _log_run(client, experiment, {"stage": "baseline", "level": level, "mlflow.parentRunId": parent},
                 {"backbone": backbone, "embedding": "none"}, {"mAP": m_ap, "n_params": n_params})
    # Finished earlier than its retry below: it must be dropped even though it would dominate everything.
    _trial(client, experiment, parent, "t3", ("fi", 0.1, 0.1, 0, 99.0, 1e6), end_time=1000)
    for trial_id, values in TRIALS.items():
        _trial(client, experiment, parent, trial_id, values)
    _trial(client, experiment, parent, "t8", ("fi", 0.1, 0.1, 0, 99.0, 1e6), status="FAILED")
    empty = client.create_experiment("empty-study", artifact_location=(tmp_path / "empty").as_uri())
    client.create_run(empty, tags={"stage": "study"})
    empty_parent = client.search_runs([empty])[0].info.run_id
    _trial(client, empty, empty_parent, "x0", TRIALS["t0"], status="FAILED")
    with pytest.warns(UserWarning, match="trial t3 has 2 finished runs"):
        result = write_report(uri, STUDY, tmp_path / "report")
    return {"uri": uri, "client": client, "parent": parent, "result": result, "tmp": tmp_path}


def test_csv_has_one_row_per_finished_trial(store) -> None:
    table = pd.read_csv(store["result"]["csv"])
    assert store["result"]["trials"] == len(TRIALS) == len(table)
    assert sorted(table["trial_id"]) == sorted(TRIALS)
    assert table.loc[table["trial_id"] == "t3", "mAP"].item() == 58.0  # the retry, not the stale run
    assert "pareto" in table.columns and "pareto_tag" not in table.columns  # no stale copy of the tag


def test_pareto_column_matches_mlflow_values(store) -> None:
    table = pd.read_csv(store["result"]["csv"])
    client = store["client"]
    runs = [client.get_run(run_id).data.metrics for run_id in table["run_id"]]
    assert table["pareto"].tolist() == pareto_front([m["mAP"] for m in runs], [m["n_params"] for m in runs]).tolist()
    assert sorted(table.loc[table["pareto"], "trial_id"]) == FRONT


def test_front_is_sorted_by_params(store) -> None:
    front = store["result"]["front"]
    assert sorted(front["trial_id"]) == FRONT
    assert front["n_params"].is_monotonic_increasing


def test_files_exist_and_are_valid(store) -> None:
    result = store["result"]
    for key in ("csv", "txt", "png", "html"):
        assert Path(result[key]).stat().st_size > 0
    assert Path(result["png"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = Path(result["html"]).read_text(encoding="utf-8")
    assert all(f"trial {trial_id} (finetune)" in html for trial_id in TRIALS)  # every trial in the hover
    assert all(f'/runs/{run_id}?workflowType=machine_learning" target="_blank">' in html for run_id in pd.read_csv(result["csv"])["run_id"])
    assert '<script src="http' not in html  # plotly.js embedded, whole: the page opens offline (any plotly size)
    import base64
    import gzip
    import re

    from plotly.offline import get_plotlyjs

    packed = re.search(r'<script id="plotly-js-gzip" type="application/octet-stream">([^<]*)</script>', html)
    assert packed and gzip.decompress(base64.b64decode(packed.group(1))).decode() == get_plotlyjs()


def test_artifacts_logged_on_parent_run(store) -> None:
    listed = store["client"].list_artifacts(store["parent"], "report")
    assert sorted(Path(a.path).name for a in listed) == ["front.txt", "pareto.html", "pareto.png", "trials.csv"]
    parent = store["client"].get_run(store["parent"]).data.metrics  # the summary on the parent run
    assert parent["front_size"] == len(FRONT) and parent["baseline_mAP"] == 57.0 and parent["best_mAP"] == 70.0
    assert parent["trials_finished"] == len(TRIALS) and parent["trials_failed"] == 1


def test_pareto_tags_follow_the_report(store) -> None:
    table = pd.read_csv(store["result"]["csv"])
    for run_id, on_front in zip(table["run_id"], table["pareto"]):
        assert store["client"].get_run(run_id).data.tags["pareto"] == ("true" if on_front else "false")


def test_tables_are_typed(store) -> None:
    with pytest.warns(UserWarning, match="keeping"):
        table = trial_table(mlflow_store(store["uri"]), STUDY)
    assert table["tau"].dtype == float and table["gcn_lr"].dtype == float
    assert str(table["pca_dim"].dtype) == "Int64" and str(table["n_params"].dtype) == "Int64"
    assert table["pareto"].dtype == bool
    assert set(table["embedding"]) == {"fi", "fpca", "word"}
    baselines = baseline_table(mlflow_store(store["uri"]), STUDY)
    assert sorted(baselines["backbone"]) == ["resnet18", "resnet50"]
    assert sorted(baselines["mAP"]) == [57.0, 66.0]
    assert sorted(baselines["n_params"]) == [11_200_000, 23_600_000]


def test_format_front_leads_with_the_answer(store) -> None:
    answer, *lines = store["result"]["text"].splitlines()
    assert answer.startswith("On this data the GCN head is more accurate than the direct model, and larger: at 8.04x "
                             "the direct model's size (90,000,000 against 11,200,000 parameters (the paper's count)), "
                             "the best IML-GCN (trial t6) is 13.00 mAP ahead (70.00 against 57.00); one seed each")
    assert lines[0] == ("Pareto front: 5 of 8 fine-tuned trials, on mAP and parameters (the paper's count); "
                        "none dominated by the same-budget direct model")
    assert lines[1].split()[:2] == ["trial", "embedding"] and "vs" in lines[1]
    assert lines[2].split()[:2] == ["direct", "(baseline)"] and "11,200,000" in lines[2]  # exact counts
    t0 = lines[3].split()
    assert t0[:6] == ["t0", "fi", "-", "0.100", "0.200", "2.00e-03"] and "+3.00" in t0 and "+0" in t0
    assert len(lines) == 3 + len(FRONT)
    stronger = pd.Series({"mAP": 61.0, "n_params": 11.2e6, "backbone": "x"})  # beats t0 at the same size
    text = format_front(store["result"]["front"], stronger, ["embedding", "tau"], 8)
    assert "1 of them dominated" in text.splitlines()[0] and DOMINATED in text.splitlines()[3]


def _plane(sizes: list[float], size: str) -> pd.DataFrame:
    return pd.DataFrame({"trial_id": [f"t{i}" for i in range(len(sizes))], "level": "finetune", "stopped_early": False,
                         "mAP": [60.0 + i for i in range(len(sizes))], size: sizes, "n_params": [1e6 + i for i in range(len(sizes))],
                         "n_params_inference": [9e5] * len(sizes), "pareto": True})


def test_a_head_only_front_on_a_deployed_size_says_every_trial_is_as_large() -> None:
    """--size inference_params over a head-only space: the GCN folds away, every trial deploys at the
    same size, and the report says so instead of drawing a front across one size."""
    from study.reports.report import same_size_note

    flat = _plane([9e5, 9e5, 9e5], "n_params_inference")
    note = same_size_note(flat, None, "n_params_inference")
    assert note.startswith("note: every fine-tuned trial has the same inference parameters (900,000)")
    assert "--size params" in note
    assert same_size_note(flat, None, "n_params") == ""  # the paper's count varies with the GCN: no note
    assert same_size_note(_plane([1e8, 2e8, 2e8], "flops"), None, "flops") == ""


def test_the_front_table_on_flops_shows_them_and_the_difference() -> None:
    front = _plane([2.0e8, 3.5e8], "flops")
    base = pd.Series({"mAP": 60.5, "n_params": 1e6, "n_params_inference": 9e5, "flops": 2.0e8})
    text = format_front(front, base, [], 2, size="flops")
    lines = text.splitlines()
    assert lines[0] == ("Pareto front: 2 of 2 fine-tuned trials, on mAP and FLOPs per image; 1 of them dominated "
                        "by the same-budget direct model")  # t0: 60.0 mAP at the direct model's 0.2 GFLOPs
    assert lines[1].split() == ["trial", "mAP", "mAP", "vs", "direct", "n_params", "n_params_inference", "GFLOPs",
                                "GFLOPs", "vs", "direct", "note"]
    assert lines[3].split()[:7] == ["t0", "60.00", "-0.50", "1,000,000", "900,000", "0.2", "+0"]
    assert lines[4].split()[:7] == ["t1", "61.00", "+0.50", "1,000,001", "900,000", "0.35", "+0.15"]


def test_dominance_by_hand() -> None:
    assert dominated_by(60.0, 11.0, 61.0, 11.0) and dominated_by(60.0, 12.0, 60.0, 11.0)
    assert not dominated_by(60.0, 11.0, 60.0, 11.0) and not dominated_by(62.0, 12.0, 61.0, 11.0)


def test_unknown_study_names_the_fix(store, tmp_path) -> None:
    with pytest.raises(ValueError, match="no MLflow experiment named 'nope'"):
        write_report(store["uri"], "nope", tmp_path)
    with pytest.raises(ValueError, match="no MLflow experiment named 'nope'"):
        trial_table(mlflow_store(store["uri"]), "nope")


def test_study_without_finished_trials_fails(store, tmp_path) -> None:
    assert trial_table(mlflow_store(store["uri"]), "empty-study").empty
    with pytest.raises(ValueError, match="no finished trials"):
        write_report(store["uri"], "empty-study", tmp_path)


def test_report_command_on_a_study_without_finished_trials_is_one_line(capsys, tmp_path) -> None:
    """`imlgcn study report NAME` before any trial finished: one line naming the fix, exit 2, no traceback."""
    from study.command.cli import main
    from study.driver.record import StudyRecord

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("waiting", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(experiment, tags={"stage": "study"}).info.run_id
    StudyRecord(name="waiting", storage=str(tmp_path / "studies"), base_config=TrialConfig().to_dict(), space="small",
                objective="multi", num_samples=2, max_concurrent=1, num_classes=20, tracking_uri=uri,
                experiment_id=experiment, parent_run_id=parent).save()
    code = main(["study", "report", "waiting", "--storage", str(tmp_path / "studies")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "Traceback" not in err
    assert [line for line in err.strip().splitlines() if "error" in line] == [
        "imlgcn: error: study 'waiting' has no finished trials yet: resume the study (`imlgcn study resume waiting`) "
        "or wait for a trial to finish, then report"]


def test_mlflow_links_open_the_model_training_view() -> None:
    """MLflow 3.17 opens an experiment on its GenAI overview unless the URL asks for the model-training
    view; the links the study prints and the report's run links ask for it, with credentials redacted."""
    from study.reports.report import experiment_url, run_url

    assert experiment_url("http://127.0.0.1:5000/", "7") == \
        "http://127.0.0.1:5000/#/experiments/7?workflowType=machine_learning"
    url = run_url("https://user:secret@mlflow.example:5000", "7", "abc")
    assert url.endswith("/#/experiments/7/runs/abc?workflowType=machine_learning") and "secret" not in url
    assert run_url("sqlite:///x.db", "7", "abc").startswith("http://127.0.0.1:5000/#/experiments/7/runs/abc")


def test_screened_rows_read_from_markers_equal_those_read_from_mlflow(tmp_path) -> None:
    """A sweep's report reads its screened runs from their markers (trainables.trial.run_markers) and only the
    fine-tuned ones from MLflow: the trial table is the same as the one read from MLflow alone."""
    from tests.mlflow_template import migrated_db
    from study.reports.report import finished_trial_runs

    migrated_db(tmp_path / "mlflow.db")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    runs = mlflow_store(uri)
    experiment = runs.experiment_id("sweep")
    parent = runs.create(experiment, "study", {"stage": "study"})
    folders = {"screen": str(tmp_path / "runs" / "screen"), "screen-r1": str(tmp_path / "runs" / "screen-r1")}
    for n, (trial_id, (embedding, tau, p, pca_dim, m_ap, n_params)) in enumerate(TRIALS.items()):
        tune_run = "screen" if n < 5 else "screen-r1"
        params = {"embedding": embedding, "tau": tau, "p": p, "pca_dim": pca_dim, "gcn_lr": 0.001 * (n + 1)}
        metrics = dict(mAP=m_ap, CP=50, CR=40, CF1=44, OP=60, OR=55, OF1=57, n_params=n_params, wall_time_s=0.1)
        runs.record_trial(folders[tune_run], f"s{trial_id}", experiment, parent, params, metrics,
                          {"level": "screen", "tune_run": tune_run}, 0)
    client = MlflowClient(tracking_uri=uri)
    for trial_id in ("t1", "t4"):
        run_id = _trial(client, experiment, parent, trial_id, TRIALS[trial_id])
        client.set_tag(run_id, "level", "finetune")
    from_mlflow = trial_table(runs, "sweep")
    finished = finished_trial_runs(runs, "sweep", folders)
    assert len(finished) == len(TRIALS) + 2
    from_markers = trial_table(runs, "sweep", finished=finished)
    pd.testing.assert_frame_equal(from_markers, from_mlflow)
    assert (from_markers["level"] == "screen").sum() == len(TRIALS) and from_markers["pareto"].sum() == 2


def test_an_answer_holding_html_characters_reads_verbatim_on_the_page(store, tmp_path) -> None:
    """The plane's answer names models ("IML-GCN's") and may hold '<' or '&': the page escapes it, so it is
    read back as written and opens no tag (tests/test_plane_study.py checks the page's text the same way)."""
    import html
    import warnings

    from study.reports.report_html import write_html
    from tests.page_text import page_text

    runs = mlflow_store(store["uri"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fixture's stale duplicate of t3
        trials = trial_table(runs, STUDY)
    answer = "The direct model on resnet18@64px is 0.07x IML-GCN's 1,545,504 parameters at < 0.5 mAP & a tie"
    path = tmp_path / "pareto.html"
    write_html(trials, trials[trials["pareto"]], baseline_table(runs, STUDY), trials.attrs.get("searched", []), path,
               STUDY, "headline", "n_params", run_link=lambda run_id: "#", notes=[answer])
    page = path.read_text()
    assert answer in page_text(page)
    assert f"<p><b>{html.escape(answer)}</b></p>" in page and "< 0.5 mAP & a" not in page
