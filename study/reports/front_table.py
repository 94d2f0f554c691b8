"""The printed answer of a study: its Pareto front against the same-budget direct model.

It leads with the answer: a title ("Pareto front: k of n fine-tuned trials"), the baseline row, exact
parameter counts, every searched parameter, and each front trial's difference to the baseline in mAP
and in parameters; a front trial that the baseline dominates (at least as accurate and no larger) is marked.
"""

from __future__ import annotations

import pandas as pd

from trainables.embeddings import key_applies

DOMINATED = "dominated by the direct model"
# a study's size metric -> how the report names it
SIZE_LABELS = {"n_params_inference": "inference parameters", "flops": "FLOPs per image", "latency_ms": "latency",
               "n_params": "parameters (the paper's count)"}
SHORT = {"n_params_inference": "params", "flops": "GFLOPs", "latency_ms": "ms", "n_params": "params"}


def size_text(size: str, value: float) -> str:
    """A size as a reader wants it: 4,922,488 (parameters), 0.179 GFLOPs, 3.1 ms."""
    if size == "flops":
        return f"{value / 1e9:.3g} GFLOPs"
    if size == "latency_ms":
        return f"{value:.3g} ms"
    return f"{int(round(value)):,}"


def _size_cell(size: str, value) -> str:
    if value is None or value is pd.NA or value != value:
        return "-"
    return f"{float(value) / 1e9:.3g}" if size == "flops" else f"{float(value):.3g}" if size == "latency_ms" \
        else f"{int(round(float(value))):,}"


def _size_difference(size: str, value, base) -> str:
    difference = float(value) - float(base)
    if size == "flops":
        return f"{difference / 1e9:+.3g}"
    if size == "latency_ms":
        return f"{difference:+.3g}"
    return f"{int(round(difference)):+,}"


def dominated_by(row_map: float, row_size: float, base_map: float, base_size: float) -> bool:
    """True when the baseline is at least as good in both objectives and strictly better in one."""
    return base_map >= row_map and base_size <= row_size and (base_map > row_map or base_size < row_size)


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
               size: str = "n_params") -> pd.DataFrame:
    """The rows printed and shown in the HTML report: baseline first, then the front by `size`. Both
    parameter counts are always shown; FLOPs or latency get their own column when they are the size."""
    versus = f"{SHORT[size]} vs direct"
    sizes = size_cells(size)

    rows = []
    if baseline is not None:
        rows.append({"trial": "direct (baseline)", **{k: "-" for k in searched}, "mAP": f"{baseline['mAP']:.2f}",
                     "mAP vs direct": "", **sizes(baseline), versus: "", "note": ""})
    for row in front.sort_values([size, "trial_id"]).itertuples(index=False):
        values = row._asdict()
        note, d_map, d_size = "", "", ""
        if baseline is not None and _known(baseline.get(size)) and _known(values.get(size)):
            d_map = f"{values['mAP'] - baseline['mAP']:+.2f}"
            d_size = _size_difference(size, values[size], baseline[size])
            if dominated_by(values["mAP"], float(values[size]), baseline["mAP"], float(baseline[size])):
                note = DOMINATED
        rows.append({"trial": str(values["trial_id"]),
                     **{k: cell(k, values.get(k)) if key_applies(k, values.get("embedding")) else "-" for k in searched},
                     "mAP": f"{values['mAP']:.2f}", "mAP vs direct": d_map, **sizes(values), versus: d_size,
                     "note": note})
    return pd.DataFrame(rows)


def size_cells(size: str):
    """The size columns of a row (both parameter counts; FLOPs or latency too when they are the study's size)
    from a mapping of its values."""
    extra = SHORT[size] if size in ("flops", "latency_ms") else None

    def cells(values) -> dict:
        row = {"n_params": _size_cell("n_params", values.get("n_params")),
               "n_params_inference": _size_cell("n_params_inference", values.get("n_params_inference"))}
        return {**row, extra: _size_cell(size, values.get(size))} if extra else row

    return cells


def _known(value) -> bool:
    return value is not None and value is not pd.NA and value == value


def format_front(front: pd.DataFrame, baseline: pd.Series | None, searched: list[str], finetuned: int,
                 screened: int = 0, size: str = "n_params", note: str = "") -> str:
    """Title (the front's size named), then the table, then `note` (plain text for the console and the
    report's text file)."""
    if front.empty:
        return "Pareto front: no fine-tuned trial finished all its epochs yet"
    title = f"Pareto front: {len(front)} of {finetuned} fine-tuned trials"
    if screened:
        title += f" ({screened} head configurations screened first)"
    title += f", on mAP and {SIZE_LABELS[size]}"
    dominated = 0
    if baseline is not None and _known(baseline.get(size)):
        dominated = sum(dominated_by(m, float(n), baseline["mAP"], float(baseline[size]))
                        for m, n in zip(front["mAP"], front[size]))
        title += f"; {dominated} of them dominated by the same-budget direct model" if dominated else \
            "; none dominated by the same-budget direct model"
    return title + "\n" + front_rows(front, baseline, searched, size).to_string(index=False) + (f"\n{note}" if note else "")
