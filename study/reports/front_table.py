"""The printed answer of a study: its Pareto front against the same-budget direct model.

It leads with the answer: a title ("Pareto front: k of n fine-tuned trials"), the baseline row, exact
parameter counts, every searched parameter, and each front trial's difference to the baseline in mAP
and in parameters; a front trial that the baseline dominates (at least as accurate and no larger, sizes within
the tolerance of study.reports.ties being the same size) is marked.
"""

from __future__ import annotations

import pandas as pd

from study.reports.ties import SIZE_TOLERANCE, dominates
from trainables.embeddings import key_applies
from trainables.size_measures import SIZE_MEASURES, known

DOMINATED = "dominated by the direct model"


def dominated_by(row_map: float, row_size: float, base_map: float, base_size: float,
                 tolerance: float = SIZE_TOLERANCE) -> bool:
    """True when the baseline is at least as good in both objectives and better in one, sizes within
    `tolerance` being the same size (study.reports.ties)."""
    return dominates(base_map, base_size, row_map, row_size, tolerance)


def cell(key: str, value) -> str:
    """A searched parameter as printed: learning rates in e-notation, floats to 3 decimals, '-' when unset."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA or value == "":
        return "-"
    if key.endswith("_lr") or key == "weight_decay":
        return f"{float(value):.2e}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def front_rows(front: pd.DataFrame, baseline: pd.Series | None, searched: list[str],
               size: str = "n_params", tolerance: float = SIZE_TOLERANCE) -> pd.DataFrame:
    """The rows printed and shown in the HTML report: baseline first, then the front by `size`. Both
    parameter counts are always shown; FLOPs or latency get their own column when they are the size."""
    measure = SIZE_MEASURES[size]
    versus = f"{measure.short} vs direct"
    sizes = size_cells(size)

    rows = []
    if baseline is not None:
        rows.append({"trial": "direct (baseline)", **{k: "-" for k in searched}, "mAP": f"{baseline['mAP']:.2f}",
                     "mAP vs direct": "", **sizes(baseline), versus: "", "note": ""})
    for row in front.sort_values([size, "trial_id"]).itertuples(index=False):
        values = row._asdict()
        note, d_map, d_size = "", "", ""
        if baseline is not None and known(baseline.get(size)) and known(values.get(size)):
            d_map = f"{values['mAP'] - baseline['mAP']:+.2f}"
            d_size = measure.difference(values[size], baseline[size])
            if dominated_by(values["mAP"], float(values[size]), baseline["mAP"], float(baseline[size]), tolerance):
                note = DOMINATED
        rows.append({"trial": str(values["trial_id"]),
                     **{k: cell(k, values.get(k)) if key_applies(k, values.get("embedding")) else "-" for k in searched},
                     "mAP": f"{values['mAP']:.2f}", "mAP vs direct": d_map, **sizes(values), versus: d_size,
                     "note": note})
    return pd.DataFrame(rows)


def size_cells(size: str):
    """The size columns of a row from a mapping of its values: every measure shown always (both parameter
    counts, by key), then the study's size by its short name when it is not one of them (GFLOPs, ms)."""
    shown = [m for m in SIZE_MEASURES.values() if m.always_shown]
    measure = SIZE_MEASURES[size]
    extra = None if measure.always_shown else measure

    def cells(values) -> dict:
        row = {m.key: m.cell(values.get(m.key)) for m in shown}
        return {**row, extra.short: extra.cell(values.get(size))} if extra else row

    return cells


def format_front(front: pd.DataFrame, baseline: pd.Series | None, searched: list[str], finetuned: int,
                 screened: int = 0, size: str = "n_params", note: str = "", tolerance: float = SIZE_TOLERANCE) -> str:
    """Title (the front's size named), then the table, then `note` (plain text for the console and the
    report's text file); sizes within `tolerance` are the same size."""
    if front.empty:
        return "Pareto front: no fine-tuned trial finished all its epochs yet"
    title = f"Pareto front: {len(front)} of {finetuned} fine-tuned trials"
    if screened:
        title += f" ({screened} head configurations screened first)"
    title += f", on mAP and {SIZE_MEASURES[size].label}"
    dominated = 0
    if baseline is not None and known(baseline.get(size)):
        dominated = sum(dominated_by(m, float(n), baseline["mAP"], float(baseline[size]), tolerance)
                        for m, n in zip(front["mAP"], front[size]))
        title += f"; {dominated} of them dominated by the same-budget direct model" if dominated else \
            "; none dominated by the same-budget direct model"
    return title + "\n" + front_rows(front, baseline, searched, size, tolerance).to_string(index=False) + (f"\n{note}" if note else "")
