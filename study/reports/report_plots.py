"""The static picture of a study report (matplotlib, no display needed; the interactive page is report_html).

It shows mAP against the study's size (parameters in millions, GFLOPs or milliseconds), the Pareto front
as a step line and the direct models (baselines) as their own markers, so "how much accuracy does the
graph buy per unit of size" reads at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from trainables.size_measures import SIZE_MEASURES  # each size's axis title and the unit it is divided by


def write_png(trials: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, path: Path, title: str,
              size: str = "n_params") -> None:
    """mAP vs `size` scatter; a Figure without pyplot renders with Agg and touches no global backend."""
    measure = SIZE_MEASURES[size]
    figure = Figure(figsize=(7.5, 4.8), dpi=120)
    ax = figure.add_subplot()
    screened = trials[trials["level"] == "screen"]
    if len(screened):
        ax.scatter(axis(screened, size), screened["mAP"], s=8, color="0.85", label=f"screened ({len(screened)})")
    rest = trials[~trials["pareto"] & (trials["level"] != "screen")]
    ax.scatter(axis(rest, size), rest["mAP"], s=18, color="0.55", label=f"fine-tuned ({len(rest) + len(front)})")
    ax.step(axis(front, size), front["mAP"], where="post", color="tab:blue", linewidth=1.5)
    ax.scatter(axis(front, size), front["mAP"], s=30, color="tab:blue", zorder=3,
               label=f"Pareto front ({len(front)})")
    markers = ("*", "D", "s", "^", "P", "X")
    for i, (row, name) in enumerate(zip(baselines.itertuples(index=False), direct_names(baselines))):
        ax.scatter([_as_float(getattr(row, size)) / measure.scale], [row.mAP], s=110, marker=markers[i % len(markers)],
                   color="tab:red", edgecolor="black", zorder=4, label=f"direct model ({name})")
    if _spans_decade(trials, baselines, size):
        ax.set_xscale("log")
    ax.set_xlabel(measure.axis)
    ax.set_ylabel("mAP (%)")
    ax.set_title(f"{title}: mAP vs model size")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")  # a plane puts points in every corner
    figure.tight_layout()
    figure.savefig(path, format="png")


def direct_names(baselines: pd.DataFrame) -> list[str]:
    """Each direct model's name: its backbone, with its resolution when the study has several points
    ('resnet10t@64px'); a screening-level one says so."""
    from study.reports.plane import model_name

    plane = baselines[["backbone", "image_size"]].drop_duplicates().shape[0] > 1 if "image_size" in baselines else False
    names = []
    for row in baselines.to_dict("records"):
        name = model_name(row["backbone"], row["image_size"]) if plane and row["image_size"] == row["image_size"] \
            else row["backbone"]
        names.append(name + (", screening" if plane and row.get("level") == "screen" else ""))
    return names


def axis(table: pd.DataFrame, size: str) -> np.ndarray:
    """The `size` column in the axis's unit (millions, GFLOPs, ms: trainables.size_measures)."""
    return table[size].astype(float).to_numpy() / SIZE_MEASURES[size].scale


def _as_float(value: object) -> float:
    return float("nan") if pd.isna(value) else float(value)


def _spans_decade(trials: pd.DataFrame, baselines: pd.DataFrame, size: str) -> bool:
    """Log x when the sizes span more than 10x (e.g. resnet18 heads next to a ViT backbone)."""
    sizes = np.concatenate([axis(trials, size), axis(baselines, size)])
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    return sizes.size > 0 and sizes.max() > 10 * sizes.min()
