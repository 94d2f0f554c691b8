"""The HTML report as a person sees it: rendered by a real headless Chromium (Debian's package), with its
JavaScript run, it shows the plot (plotly's SVG) and the table of every trial; a head-only study's page leads
with its answer and lists its fine-tuned trial first."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from tests.page_text import text_blocks
from tests.test_report import TRIALS, store  # noqa: F401  (the report of a hand-made study)
from tests.test_report_page import head_only, table_ids  # noqa: F401  (a head-only study's report)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=10000"]
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install "
                                                             "chromium); .ci/run installs it where it can")


def _dom(page: str, profile) -> subprocess.CompletedProcess:
    """The page's DOM after its JavaScript ran."""
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--dump-dom", f"file://{page}"],
                          capture_output=True, text=True, timeout=120)


@needs_chromium
def test_report_renders_its_plot_and_the_table_of_all_trials(store, tmp_path):  # noqa: F811
    page = store["result"]["html"]
    done = _dom(page, tmp_path / "profile")
    dom = done.stdout
    assert 'class="main-svg"' in dom, done.stderr[-2000:]  # plotly drew the chart: its JavaScript ran
    assert dom.count('class="point"') >= len(TRIALS)  # a marker per trial
    table = re.search(r'<table id="trials-table">.*?</table>', dom, re.S).group(0)
    assert table.count("<tr") == 1 + len(TRIALS)  # header + one row per trial
    assert all(f">{trial_id}</a>" in table for trial_id in TRIALS)  # each id links to its MLflow run
    assert "Pareto front: 5 of 8 fine-tuned trials" in dom
    shot = tmp_path / "report.png"
    subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--window-size=1200,1400",
                    f"--screenshot={shot}", f"file://{page}"], capture_output=True, timeout=120)
    assert shot.stat().st_size > 20_000  # a real picture, not a blank page


@needs_chromium
def test_a_head_only_page_leads_with_its_answer_and_its_fine_tuned_trial(head_only, tmp_path):  # noqa: F811
    done = _dom(head_only["result"]["html"], tmp_path / "profile")
    dom = done.stdout
    assert 'class="main-svg"' in dom, done.stderr[-2000:]
    assert text_blocks(dom)[0] == " ".join(head_only["given"]["headline"].split())  # the answer, first
    assert table_ids(dom)[0] == "z-tuned"  # the fine-tuned trial in the first row
    assert "mAP is shown by embedding instead" in dom  # the line saying why, above the chart
    assert re.search(r'class="xtitle"[^>]*>embedding<', dom)  # whose x axis is what varies
