"""The printed answer of a study: its Pareto front against the same-budget direct model.

It leads with the answer: a title ("Pareto front: k of n fine-tuned trials"), the baseline row, exact
parameter counts, every searched parameter, and each front trial's difference to the baseline in mAP
and in parameters; a front trial that the baseline dominates (at least as accurate and no larger) is marked.
"""

from __future__ import annotations

import pandas as pd

DOMINATED = "dominated by the direct model"


def dominated_by(row_map: float, row_params: float, base_map: float, base_params: float) -> bool:
    """True when the baseline is at least as good in both objectives and strictly better in one."""
    return base_map >= row_map and base_params <= row_params and (base_map > row_map or base_params < row_params)


def _cell(key: str, value) -> str:
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA or value == "":
        return "-"
    if key.endswith("_lr") or key == "weight_decay":
        return f"{float(value):.2e}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)


def front_rows(front: pd.DataFrame, baseline: pd.Series | None, searched: list[str]) -> pd.DataFrame:
    """The rows printed and shown in the HTML report: baseline first, then the front by size."""
    rows = []
    if baseline is not None:
        rows.append({"trial": "direct (baseline)", **{k: "-" for k in searched}, "mAP": f"{baseline['mAP']:.2f}",
                     "mAP vs direct": "", "n_params": f"{int(baseline['n_params']):,}", "params vs direct": "",
                     "n_params_inference": f"{int(baseline['n_params']):,}", "note": ""})
    for row in front.sort_values(["n_params", "trial_id"]).itertuples(index=False):
        values = row._asdict()
        note, d_map, d_params = "", "", ""
        if baseline is not None:
            d_map = f"{values['mAP'] - baseline['mAP']:+.2f}"
            d_params = f"{int(values['n_params']) - int(baseline['n_params']):+,}"
            if dominated_by(values["mAP"], float(values["n_params"]), baseline["mAP"], float(baseline["n_params"])):
                note = DOMINATED
        pca = values.get("embedding") == "fpca"
        rows.append({"trial": str(values["trial_id"]),
                     **{k: _cell(k, values.get(k)) if k != "pca_dim" or pca else "-" for k in searched},
                     "mAP": f"{values['mAP']:.2f}", "mAP vs direct": d_map, "n_params": f"{int(values['n_params']):,}",
                     "params vs direct": d_params,
                     "n_params_inference": f"{int(values['n_params_inference']):,}"
                     if values.get("n_params_inference") is not pd.NA and values.get("n_params_inference") == values.get("n_params_inference")
                     else "-", "note": note})
    return pd.DataFrame(rows)


def format_front(front: pd.DataFrame, baseline: pd.Series | None, searched: list[str], finetuned: int,
                 screened: int = 0) -> str:
    """Title, then the table (plain text for the console and the report's text file)."""
    if front.empty:
        return "Pareto front: no fine-tuned trial finished all its epochs yet"
    title = f"Pareto front: {len(front)} of {finetuned} fine-tuned trials"
    if screened:
        title += f" ({screened} head configurations screened first)"
    dominated = 0
    if baseline is not None:
        dominated = sum(dominated_by(m, float(n), baseline["mAP"], float(baseline["n_params"]))
                        for m, n in zip(front["mAP"], front["n_params"]))
        title += f"; {dominated} of them dominated by the same-budget direct model" if dominated else \
            "; none dominated by the same-budget direct model"
    return title + "\n" + front_rows(front, baseline, searched).to_string(index=False)
