"""The static picture of a study report (matplotlib, no display needed; the interactive page is report_html).

It shows mAP against the study's size (parameters in millions, GFLOPs or milliseconds), the Pareto front
as a step line and the direct models (baselines) as their own markers, so "how much accuracy does the
graph buy per unit of size" reads at once. Where every point has the same size within ties.SIZE_TOLERANCE
(a head-only space: the GCN folds away), a size axis would stand every point in one vertical line: both
plots show mAP by what varies instead (`shown_by`), the direct models as horizontal lines, and say why.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from study.reports.ties import SIZE_TOLERANCE, same_size
from trainables.embeddings import key_applies
from trainables.size_measures import SIZE_MEASURES, known  # each size's axis title and the unit it is divided by


def write_png(trials: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, path: Path, title: str,
              size: str = "n_params", searched: list[str] | None = None) -> Figure:
    """mAP vs `size` scatter (or mAP by `shown_by`'s key); a Figure without pyplot renders with Agg and
    touches no global backend. `searched`: the study's searched keys (default: trials.attrs["searched"])."""
    searched = trials.attrs.get("searched", []) if searched is None else searched
    measure = SIZE_MEASURES[size]
    figure = Figure(figsize=(7.5, 4.8), dpi=120)
    ax = figure.add_subplot()
    by = shown_by(trials, baselines, size, searched)
    if by is not None:
        _by_key(ax, trials, front, baselines, by, title)
        figure.tight_layout()
        figure.savefig(path, format="png")
        return figure
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
    return figure


@dataclass(frozen=True)
class ShownBy:
    """What the plots show mAP by when the size axis is flat: a searched `key`, whether its values are
    categories (text) or numbers, and the `note` saying why."""

    key: str
    categorical: bool
    note: str

    def values(self, table: pd.DataFrame) -> pd.Series:
        """The x of each row: its value as text (a category) or as a number."""
        column = table[self.key]
        return column.astype(str) if self.categorical else pd.to_numeric(column, errors="coerce").astype(float)

    def categories(self, table: pd.DataFrame) -> list[str]:
        return sorted(set(self.values(table)))


def shown_by(trials: pd.DataFrame, baselines: pd.DataFrame, size: str, searched: list[str],
             tolerance: float = SIZE_TOLERANCE) -> ShownBy | None:
    """None while the plotted points (every trial and direct model with a known `size`) differ in size by more
    than `tolerance` (ties.same_size); else what varies instead: the embedding where trials differ in it, else the searched
    key with the most distinct values (none varies: None, the size axis stays)."""
    sizes = np.concatenate([axis(trials, size), axis(baselines, size) if size in baselines else []])
    sizes = sizes[np.isfinite(sizes)]
    if sizes.size == 0 or not same_size(float(sizes.min()), float(sizes.max()), tolerance):
        return None
    counts = {key: _distinct(trials, key) for key in dict.fromkeys(["embedding", *searched]) if key in trials}
    key = "embedding" if counts.get("embedding", 0) > 1 else max(counts, key=counts.get, default="")
    if counts.get(key, 0) < 2:
        return None
    column = trials[key]
    categorical = not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    measure = SIZE_MEASURES[size]
    low, high = (measure.text(float(v) * measure.scale) for v in (sizes.min(), sizes.max()))
    who = "trial and direct model" if size in baselines and np.isfinite(axis(baselines, size)).any() else "trial"
    what = (f"by {key}" if key == "embedding" else
            f"by {key}, the searched parameter with the most values," if categorical else
            f"against {key}, the searched parameter with the most values,")
    return ShownBy(key, categorical, f"Every {who} has the same {measure.label} within {tolerance * 100:g} % "
                                     f"({low if low == high else f'{low} to {high}'}): mAP is shown {what} instead.")


def _distinct(trials: pd.DataFrame, key: str) -> int:
    """How many values `key` takes over the trials it applies to (missing values not counted)."""
    embeddings = trials["embedding"] if "embedding" in trials else [None] * len(trials)
    return len({str(v) for v, e in zip(trials[key], embeddings) if key_applies(key, e) and known(v) and v != ""})


def _by_key(ax, trials: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, by: ShownBy,
            title: str) -> None:
    """mAP by `by.key`: a box per category (or a scatter against a number), the fine-tuned trials and the
    front as points, each direct model as a horizontal line; the note under the axis."""
    screened = trials[trials["level"] == "screen"]
    tuned = trials[trials["level"] != "screen"]
    categories = by.categories(trials)
    place = {category: i for i, category in enumerate(categories)}

    def x(table: pd.DataFrame, spread: float = 0.0) -> np.ndarray:
        if not by.categorical:
            return by.values(table).to_numpy()
        jitter = np.random.default_rng(0).uniform(-spread, spread, len(table))
        return by.values(table).map(place).to_numpy(dtype=float) + jitter

    if by.categorical:
        boxed = screened if len(screened) else tuned
        ax.boxplot([boxed.loc[by.values(boxed) == c, "mAP"].dropna().to_numpy() for c in categories],
                   positions=range(len(categories)), widths=0.5, showfliers=False)
        ax.set_xticks(range(len(categories)), categories)
    elif by.key.endswith("_lr"):
        ax.set_xscale("log")
    if len(screened):
        ax.scatter(x(screened, 0.2), screened["mAP"], s=8, color="0.8", label=f"screened ({len(screened)})")
    rest = tuned[~tuned["pareto"]]
    ax.scatter(x(rest), rest["mAP"], s=18, color="0.45", zorder=3, label=f"fine-tuned ({len(tuned)})")
    ax.scatter(x(front), front["mAP"], s=30, color="tab:blue", zorder=3, label=f"Pareto front ({len(front)})")
    for row, name in zip(baselines.itertuples(index=False), direct_names(baselines)):
        ax.axhline(row.mAP, color="tab:red", linestyle="--", linewidth=1, label=f"direct model ({name}) {row.mAP:.2f}")
    ax.set_xlabel(f"{by.key}\n" + textwrap.fill(by.note, 100), fontsize="small")
    ax.set_ylabel("mAP (%)")
    ax.set_title(f"{title}: mAP by {by.key} (every point the same size)")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="best", fontsize="small")


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
