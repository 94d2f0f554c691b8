"""The report reads best first (issue 31, item 4): the page leads with the answer report.py gives it and its table
of trials starts with the fine-tuned ones, then the screened ones by mAP. tests/test_report_browser.py reads the
same page as Chromium draws it."""

from __future__ import annotations

import inspect
import re

import numpy as np
import pandas as pd
import pytest

from study.reports import report_html
from study.reports.report_html import SCREENED_ROWS, table_rows
from tests.page_text import text_blocks
from trainables.config import TrialConfig

STUDY = "head-only"
DEPLOYED, DIRECT = 375_280, 375_307  # the folded IML-GCN and the direct model: 27 biases apart


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
    assert 'onclick="sortTable(this)"' in page  # sorting by a column is kept


def _trials(sizes: list[float], embeddings: list[str], screened: int = 0) -> pd.DataFrame:
    n = len(sizes)
    return pd.DataFrame({"trial_id": [f"t{i:03d}" for i in range(n)], "run_id": [f"r{i}" for i in range(n)],
                         "level": ["screen"] * screened + ["finetune"] * (n - screened), "stopped_early": False,
                         "pareto": [False] * (n - 1) + [True], "mAP": [50.0 + (i * 7) % 11 for i in range(n)],
                         "direct_mAP": 55.0, "embedding": embeddings, "tau": [0.1 * i for i in range(n)],
                         "pca_dim": pd.array([8] * n, dtype="Int64"), "n_params": sizes, "n_params_inference": sizes,
                         "flops": 1e8, "latency_ms": 1.0})


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
