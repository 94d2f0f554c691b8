"""The report reads best first (issue 31, item 4): the page leads with the answer report.py gives it, its table of
trials starts with the fine-tuned ones, then the screened ones by mAP, and a size axis on which every point has
the same size (a head-only space: the GCN folds away) gives way to mAP by embedding, on the page and in the PNG,
with a line saying why. tests/test_report_browser.py reads the same page as Chromium draws it."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pandas as pd
import pytest

from study.reports import report_html
from study.reports.report_html import SCREENED_ROWS, WEBGL_POINTS, figure, table_rows
from study.reports.report_plots import shown_by, write_png
from tests.page_text import page_text, text_blocks
from trainables.config import TrialConfig
from trainables.size_measures import SIZE_MEASURES

STUDY = "head-only"
DEPLOYED, DIRECT = 375_280, 375_307  # the folded IML-GCN and the direct model: 27 biases apart
NOTE = ("Every trial and direct model has the same inference parameters within 1 % (375,280 to 375,307): "
        "mAP is shown by embedding instead.")


@pytest.fixture(scope="module")
def head_only(tmp_path_factory) -> dict:
    """A head-only study in small: 12 screened heads (two better than the fine-tuned trial, every id before
    its), one fine-tuned trial, the direct model 27 parameters larger; its report, and what report.py gave
    the page (write_html's arguments)."""
    from study.reports.report import write_report
    from tests.mlflow_template import migrated_db
    from trainables.trial.mlflow_runs import store

    tmp = tmp_path_factory.mktemp("head-only")
    migrated_db(tmp / "mlflow.db")
    uri = f"sqlite:///{tmp}/mlflow.db"
    runs = store(uri)
    experiment = runs.experiment_id(STUDY)
    parent = runs.create(experiment, "study", {"stage": "study"})
    direct = runs.create(experiment, "direct", {"stage": "baseline", "level": "finetune", "mlflow.parentRunId": parent},
                         {"backbone": "test_resnet", "embedding": "none", "image_size": 64})
    runs.finish(direct, {"mAP": 60.55, "n_params": DIRECT, "n_params_inference": DIRECT}, 0)
    folder = str(tmp / "runs" / "screen")
    for i in range(12):
        params = {"embedding": ("fi", "fpca", "word")[i % 3], "tau": 0.1 + 0.05 * i, "p": 0.3, "pca_dim": 8,
                  "gcn_lr": 1e-3}
        metrics = {"mAP": 58.0 + 0.25 * i, "n_params": 380_000 + i, "n_params_inference": DEPLOYED, "direct_mAP": 60.5}
        runs.record_trial(folder, f"s{i:02d}", experiment, parent, params, metrics, {"level": "screen", "tune_run": "screen"}, 0)
    tags = {"stage": "trial", "trial_id": "z-tuned", "level": "finetune", "mlflow.parentRunId": parent}
    tuned = runs.create(experiment, "z-tuned", tags, TrialConfig(embedding="fpca", tau=0.35, pca_dim=8).to_dict())
    runs.finish(tuned, {"mAP": 60.47, "n_params": 380_100, "n_params_inference": DEPLOYED, "direct_mAP": 60.55}, 0)
    given: dict = {}
    real = report_html.write_html

    def spy(*args, **kwargs):
        given.update(inspect.signature(real).bind(*args, **kwargs).arguments)
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(report_html, "write_html", spy)
        result = write_report(uri, STUDY, tmp / "report", size="n_params_inference", screened={"screen": folder})
    return {"result": result, "given": given, "page": (tmp / "report" / "pareto.html").read_text(encoding="utf-8")}


def table_ids(page: str) -> list[str]:
    """The trial ids of the page's table of every trial, in the order its rows stand."""
    table = re.search(r'<table id="trials-table">.*?</table>', page, re.S).group(0)
    return re.findall(r"<tr[^>]*><td>(?:<a [^>]*>)?([^<]*)", table)


def test_the_page_leads_with_the_answer_and_lists_the_fine_tuned_trial_first(head_only) -> None:
    page = head_only["page"]
    assert text_blocks(page)[0] == " ".join(head_only["given"]["headline"].split())  # what report.py gives the page
    ids = table_ids(page)
    assert ids[0] == "z-tuned" and len(ids) == 13
    screened = [58.0 + 0.25 * int(trial_id[1:]) for trial_id in ids[1:]]
    assert screened == sorted(screened, reverse=True) and ids[1] == "s11"
    assert NOTE in page_text(page)
    assert 'onclick="sortTable(this)"' in page  # sorting by a column is kept


def _trials(sizes: list[float], embeddings: list[str], screened: int = 0) -> pd.DataFrame:
    n = len(sizes)
    return pd.DataFrame({"trial_id": [f"t{i:03d}" for i in range(n)], "run_id": [f"r{i}" for i in range(n)],
                         "level": ["screen"] * screened + ["finetune"] * (n - screened), "stopped_early": False,
                         "pareto": [False] * (n - 1) + [True], "mAP": [50.0 + (i * 7) % 11 for i in range(n)],
                         "direct_mAP": 55.0, "embedding": embeddings, "tau": [0.1 * i for i in range(n)],
                         "pca_dim": pd.array([8] * n, dtype="Int64"), "n_params": sizes, "n_params_inference": sizes,
                         "flops": 1e8, "latency_ms": 1.0})


def _directs(sizes: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"run_id": [f"b{i}" for i in range(len(sizes))], "backbone": [f"net{i}" for i in range(len(sizes))],
                         "image_size": 64.0, "level": "finetune", "mAP": 55.0, "n_params": sizes,
                         "n_params_inference": sizes})


def test_the_rows_are_the_fine_tuned_trials_then_the_best_screened_by_map() -> None:
    rng = np.random.default_rng(1)
    table = _trials([1e6] * (SCREENED_ROWS + 53), ["fi"] * (SCREENED_ROWS + 53), screened=SCREENED_ROWS + 50)
    table["mAP"] = rng.uniform(40, 70, len(table))
    shown, heading = table_rows(table)
    tuned = table[table["level"] == "finetune"]
    assert list(shown["trial_id"].iloc[:3]) == list(tuned.sort_values("mAP", ascending=False)["trial_id"])
    best = table[table["level"] == "screen"].nlargest(SCREENED_ROWS, "mAP")
    assert list(shown["trial_id"].iloc[3:]) == list(best["trial_id"])  # chosen by mAP, not by id, and in that order
    assert f"best {SCREENED_ROWS} of {SCREENED_ROWS + 50} screened configurations by mAP" in heading
    small = table.iloc[SCREENED_ROWS - 10:]  # 60 screened, 3 fine-tuned: all of them, in the same order
    assert list(table_rows(small)[0]["level"]) == ["finetune"] * 3 + ["screen"] * 60
    assert table_rows(small)[0]["mAP"].iloc[3:].is_monotonic_decreasing


def test_a_size_axis_within_the_tolerance_gives_way_to_map_by_embedding(tmp_path) -> None:
    embeddings = ["fi", "fpca", "word", "fpca", "fi", "word"]
    trials = _trials([DEPLOYED] * 6, embeddings, screened=4)
    directs = _directs([DIRECT])
    by = shown_by(trials, directs, "n_params_inference", ["embedding", "tau"])
    assert by.key == "embedding" and by.categorical and by.note == NOTE
    chart = figure(trials, trials[trials["pareto"]], directs, ["embedding", "tau"], "s: mAP vs model size",
                   "n_params_inference")
    assert chart.layout.xaxis.title.text == "embedding" and chart.layout.xaxis.type == "category"
    assert chart.layout.shapes[0].y0 == 55.0  # the direct model: a horizontal line
    png = write_png(trials, trials[trials["pareto"]], directs, tmp_path / "p.png", "s", "n_params_inference",
                    ["embedding", "tau"])
    label = " ".join(png.axes[0].get_xlabel().split())
    assert label.startswith("embedding Every trial and direct model") and "mAP is shown by embedding" in label
    one_head = _trials([DEPLOYED] * 6, ["fi"] * 6, screened=4)  # the embedding does not vary: the key that varies most
    by = shown_by(one_head, directs, "n_params_inference", ["embedding", "tau", "pca_dim"])
    assert by.key == "tau" and not by.categorical and "mAP is shown against tau" in by.note


def test_a_plane_with_sizes_ten_times_apart_keeps_the_size_axis(tmp_path) -> None:
    trials = _trials([1e6, 2e6, 5e6, 1e7], ["fi", "fpca", "word", "fi"])
    directs = _directs([1e6, 1e7])
    measure = SIZE_MEASURES["n_params_inference"]
    assert shown_by(trials, directs, "n_params_inference", ["embedding", "tau"]) is None
    chart = figure(trials, trials[trials["pareto"]], directs, ["embedding", "tau"], "s", "n_params_inference")
    assert chart.layout.xaxis.title.text == measure.axis
    png = write_png(trials, trials[trials["pareto"]], directs, tmp_path / "p.png", "s", "n_params_inference",
                    ["embedding", "tau"])
    assert png.axes[0].get_xlabel() == measure.axis
    page = tmp_path / "pareto.html"
    report_html.write_html(trials, trials[trials["pareto"]], directs, ["embedding", "tau"], page, "s", "headline",
                           "n_params_inference", run_link=lambda run: "#")
    assert "mAP is shown" not in page.read_text()


def test_a_sweep_of_many_sizes_draws_its_screened_points_with_webgl() -> None:
    n = WEBGL_POINTS + 1
    trials = _trials([1e6 * (1 + i % 20) for i in range(n + 1)], ["fi"] * (n + 1), screened=n)
    chart = figure(trials, trials[trials["pareto"]], _directs([1e6]), ["embedding", "tau"], "s", "n_params_inference")
    assert chart.data[0].type == "scattergl" and len(chart.data[0].x) == n
