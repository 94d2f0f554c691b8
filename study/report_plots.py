"""The static picture of a study report (matplotlib, no display needed; the interactive page is report_html).

It shows mAP against parameters in millions, the Pareto front as a step line and the direct models
(baselines) as their own markers, so "how much accuracy does the graph buy per parameter" reads at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure



def write_png(trials: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, path: Path, title: str) -> None:
    """mAP vs params (M) scatter; a Figure without pyplot renders with Agg and touches no global backend."""
    figure = Figure(figsize=(7.5, 4.8), dpi=120)
    ax = figure.add_subplot()
    screened = trials[trials["level"] == "screen"]
    if len(screened):
        ax.scatter(_millions(screened), screened["mAP"], s=8, color="0.85", label=f"screened ({len(screened)})")
    rest = trials[~trials["pareto"] & (trials["level"] != "screen")]
    ax.scatter(_millions(rest), rest["mAP"], s=18, color="0.55", label=f"fine-tuned ({len(rest) + len(front)})")
    ax.step(_millions(front), front["mAP"], where="post", color="tab:blue", linewidth=1.5)
    ax.scatter(_millions(front), front["mAP"], s=30, color="tab:blue", zorder=3,
               label=f"Pareto front ({len(front)})")
    markers = ("*", "D", "s", "^", "P", "X")
    for i, row in enumerate(baselines.itertuples(index=False)):
        ax.scatter([_as_float(row.n_params) / 1e6], [row.mAP], s=110, marker=markers[i % len(markers)],
                   color="tab:red", edgecolor="black", zorder=4, label=f"direct model ({row.backbone})")
    if _spans_decade(trials, baselines):
        ax.set_xscale("log")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("mAP (%)")
    ax.set_title(f"{title}: mAP vs model size")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    figure.tight_layout()
    figure.savefig(path, format="png")


def _millions(table: pd.DataFrame) -> np.ndarray:
    return table["n_params"].astype(float).to_numpy() / 1e6


def _as_float(value: object) -> float:
    return float("nan") if pd.isna(value) else float(value)


def _spans_decade(trials: pd.DataFrame, baselines: pd.DataFrame) -> bool:
    """Log x when the sizes span more than 10x (e.g. resnet18 heads next to a ViT backbone)."""
    sizes = np.concatenate([_millions(trials), _millions(baselines)])
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    return sizes.size > 0 and sizes.max() > 10 * sizes.min()
