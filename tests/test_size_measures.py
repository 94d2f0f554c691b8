"""The size-measure registry (trainables/size_measures.py) against what the run records and the report shows.

Hand-worked values; then one entry is swapped for another (monkeypatch) and the study record, the plots'
axes, the front table and the HTML table must all follow it: none of them holds its own copy.
"""

import dataclasses
import re

import pandas as pd
import pytest

from trainables.size_measures import (COUNT_KEYS, DEVICE_KEY, OPTIONS, PLANE_KEYS, SIZE_KEYS, SIZE_MEASURES,
                                      SizeMeasure, known, size_measure)

NAN = float("nan")


def test_the_entries_by_hand():
    assert SIZE_KEYS == ("n_params", "n_params_inference", "flops", "latency_ms", "images_per_s")
    assert COUNT_KEYS == ("n_params", "n_params_inference") and "images_per_s" not in PLANE_KEYS
    assert OPTIONS == {"params": "n_params", "inference_params": "n_params_inference", "flops": "flops",
                       "latency": "latency_ms"}
    assert all(SIZE_MEASURES[key].minimise for key in OPTIONS.values())  # a study's size is minimised
    assert not SIZE_MEASURES["images_per_s"].minimise
    with pytest.raises(ValueError, match="size measure 'watts' is not one of n_params"):
        size_measure("watts")


def test_text_cells_and_differences_by_hand():
    params, flops, latency = SIZE_MEASURES["n_params"], SIZE_MEASURES["flops"], SIZE_MEASURES["latency_ms"]
    assert params.text(4922488.4) == "4,922,488" and flops.text(1.79e8) == "0.179 GFLOPs" and latency.text(3.1) == "3.1 ms"
    assert params.cell(1_000_001) == "1,000,001" and flops.cell(3.5e8) == "0.35" and latency.cell(12.345) == "12.3"
    assert params.difference(1_000_000, 1_001_024) == "-1,024" and flops.difference(3.5e8, 2e8) == "+0.15"
    assert latency.difference(2.0, 2.0) == "+0"
    for missing in (None, pd.NA, NAN):
        assert not known(missing) and params.cell(missing) == "-" and flops.cell(missing) == "-"
    assert known(0.0) and known("7")


def test_a_run_records_exactly_the_registry_measures(monkeypatch):
    from trainables.config import TrialConfig
    from trainables.models import sizes as measured
    from trainables.models.model import build_model

    monkeypatch.setattr(measured, "time_forward", lambda *args, **kwargs: 1e-3)  # timing is test_sizes' subject
    monkeypatch.setattr(measured, "deployed_sizes", measured.deployed_sizes.__wrapped__)  # nothing cached
    model = build_model("test_resnet", 3, "none")
    sizes = measured.model_sizes(model, TrialConfig(backbone="test_resnet", image_size=32))
    assert set(sizes) == {*SIZE_KEYS, DEVICE_KEY}


def test_the_study_record_and_the_cli_take_the_registry_options():
    from study.command.cli import build_parser
    from study.driver.record import SIZES, StudyRecord

    assert SIZES == OPTIONS
    for option, key in OPTIONS.items():
        record = StudyRecord("s", "/x", {}, "paper", "multi", 0, 1, 5, "", "", "", size=option)
        assert record.size_metric == key
    parser = build_parser()
    for option in OPTIONS:
        assert parser.parse_args(["study", "run", "--name", "s", "--size", option]).size == option
    with pytest.raises(SystemExit):
        parser.parse_args(["study", "run", "--name", "s", "--size", "images_per_s"])  # not minimised: no option


def _front(size: str) -> pd.DataFrame:
    return pd.DataFrame({"trial_id": ["t0", "t1"], "level": "finetune", "stopped_early": False, "pareto": True,
                         "embedding": "fpca", "pca_dim": pd.array([2, 3], dtype="Int64"), "mAP": [60.0, 61.0],
                         "direct_mAP": [59.0, 59.0], "run_id": ["r0", "r1"], "n_params": [1_000_000, 1_000_001],
                         "n_params_inference": pd.array([900_000, 900_000], dtype="Int64"),
                         "flops": [2.0e8, 3.5e8], "latency_ms": [2.0, NAN], "images_per_s": [500.0, 400.0]})


@pytest.fixture
def renamed(monkeypatch):
    """flops under other names everywhere a reader sees it (same key and scale)."""
    entry = dataclasses.replace(SIZE_MEASURES["flops"], label="compute", axis="G-ops axis", unit="Gops",
                                short="Gops", column="giga ops")
    monkeypatch.setitem(SIZE_MEASURES, "flops", entry)
    return entry


def test_the_front_table_and_its_title_read_the_entry(renamed):
    from study.reports.front_table import format_front

    base = pd.Series({"mAP": 60.5, "n_params": 1e6, "n_params_inference": 9e5, "flops": 2.0e8})
    lines = format_front(_front("flops"), base, [], 2, size="flops").splitlines()
    assert lines[0].startswith("Pareto front: 2 of 2 fine-tuned trials, on mAP and compute;")
    assert lines[1].split()[-5:] == ["Gops", "Gops", "vs", "direct", "note"]
    assert lines[3].split()[5:7] == ["0.2", "+0"] and lines[4].split()[5:7] == ["0.35", "+0.15"]


def test_the_plots_read_the_entry(renamed):
    from study.reports.report_html import figure
    from study.reports.report_plots import axis

    front = _front("flops")
    assert list(axis(front, "flops")) == [0.2, 0.35]  # / scale: GFLOPs
    fig = figure(front, front, front.iloc[:0].assign(backbone=[], image_size=[]), ["embedding", "pca_dim"], "t", "flops")
    assert fig.layout.xaxis.title.text == "G-ops axis"


def test_the_html_trial_table_reads_the_entries(renamed, monkeypatch, tmp_path):
    import study.reports.report_html as report_html

    monkeypatch.setattr(report_html, "_plotly_js_gzip", lambda: "")
    front = _front("flops")
    path = tmp_path / "page.html"
    report_html.write_html(front, front, front.iloc[:0].assign(backbone=[], image_size=[]), ["embedding", "pca_dim"],
                           path, "s", "headline", "flops", run_link=lambda run: f"#{run}")
    page = path.read_text()
    table = page[page.index('id="trials-table"'):]
    headings = re.findall(r"<th[^>]*>([^<]*)</th>", table)
    assert headings[:5] == ["trial", "level", "embedding", "pca_dim", "mAP"]
    assert headings[6:10] == ["n_params", "n_params_inference", "giga ops", "latency ms"]
    cells = re.findall(r"<td>(?:<a [^>]*>)?([^<]*)", table[table.index("<tbody>"):])  # a trial id is a link
    assert cells[12:24] == ["t0", "finetune", "fpca", "2", "60.00", "+1.00", "1,000,000", "900,000", "0.2", "2",
                            "yes", ""]  # second: the table lists the best mAP first
    assert cells[0] == "t1" and cells[8:10] == ["0.35", "-"]  # t1's latency is unknown


def test_a_new_entry_is_a_size_the_report_can_use(monkeypatch):
    """An entry is all the report needs: its label, axis, unit and cells come from it."""
    from study.reports.front_table import format_front
    from study.reports.report_plots import axis

    monkeypatch.setitem(SIZE_MEASURES, "energy_mj", SizeMeasure(
        "energy_mj", "energy per image", "joules of one forward", "energy per image (J)", 1e3, "J", "J", "energy J"))
    front = _front("energy_mj").assign(energy_mj=[2500.0, 4000.0])
    text = format_front(front, None, [], 2, size="energy_mj")
    assert "on mAP and energy per image" in text.splitlines()[0]
    assert text.splitlines()[1].split()[-5:] == ["J", "J", "vs", "direct", "note"]
    assert list(axis(front, "energy_mj")) == [2.5, 4.0]
