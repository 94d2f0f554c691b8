"""The two pictures of a study report: a static PNG (matplotlib, no display needed) and an offline HTML (plotly).

Both show mAP against parameters in millions, the Pareto front as a step line and the direct models
(baselines) as their own markers, so "how much accuracy does the graph buy per parameter" reads at once.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from matplotlib.figure import Figure

HOVER = ("trial %{customdata[0]}<br>embedding %{customdata[1]}<br>tau %{customdata[2]}<br>p %{customdata[3]}"
         "<br>pca_dim %{customdata[4]}<br>mAP %{customdata[5]}<br>n_params %{customdata[6]}<extra></extra>")


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


def write_html(trials: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, path: Path, title: str) -> None:
    """The same picture, interactive; plotly.js is embedded so the file opens offline."""
    screened = trials[trials["level"] == "screen"]
    rest = trials[~trials["pareto"] & (trials["level"] != "screen")]
    figure = go.Figure()
    if len(screened):
        figure.add_trace(go.Scatter(x=_millions(screened), y=screened["mAP"], mode="markers",
                                    name="screened (head on cached features)", opacity=0.35,
                                    marker={"color": "#bbbbbb", "size": 5}, customdata=_hover_data(screened),
                                    hovertemplate=HOVER))
    figure.add_trace(go.Scatter(x=_millions(rest), y=rest["mAP"], mode="markers", name="fine-tuned",
                                marker={"color": "#777777", "size": 7}, customdata=_hover_data(rest),
                                hovertemplate=HOVER))
    figure.add_trace(go.Scatter(x=_millions(front), y=front["mAP"], mode="lines+markers", name="Pareto front",
                                line={"shape": "hv", "color": "#1f77b4"}, marker={"size": 9},
                                customdata=_hover_data(front), hovertemplate=HOVER))
    figure.add_trace(go.Scatter(x=[_as_float(v) / 1e6 for v in baselines["n_params"]], y=baselines["mAP"],
                                mode="markers", name="direct model (baseline)",
                                marker={"symbol": "star", "size": 14, "color": "#d62728"},
                                text=baselines["backbone"],
                                hovertemplate="direct model %{text}<br>mAP %{y:.2f}<br>params %{x:.2f} M<extra></extra>"))
    figure.update_layout(title=f"{title}: mAP vs model size", xaxis_title="parameters (millions)",
                         yaxis_title="mAP (%)", template="plotly_white")
    if _spans_decade(trials, baselines):
        figure.update_xaxes(type="log")
    figure.write_html(str(path), include_plotlyjs=True, full_html=True)


def _millions(table: pd.DataFrame) -> np.ndarray:
    return table["n_params"].astype(float).to_numpy() / 1e6


def _as_float(value: object) -> float:
    return float("nan") if pd.isna(value) else float(value)


def _spans_decade(trials: pd.DataFrame, baselines: pd.DataFrame) -> bool:
    """Log x when the sizes span more than 10x (e.g. resnet18 heads next to a ViT backbone)."""
    sizes = np.concatenate([_millions(trials), _millions(baselines)])
    sizes = sizes[np.isfinite(sizes) & (sizes > 0)]
    return sizes.size > 0 and sizes.max() > 10 * sizes.min()


def _hover_data(table: pd.DataFrame) -> list[list[str]]:
    """Pre-formatted hover strings (pca_dim only for fpca), so NaN/NA never reach the JSON."""
    def num(value: object, spec: str) -> str:
        return "-" if pd.isna(value) else format(float(value), spec)

    return [[str(row.trial_id), str(row.embedding), num(row.tau, ".3f"), num(row.p, ".3f"),
             str(int(row.pca_dim)) if row.embedding == "fpca" and not pd.isna(row.pca_dim) else "-",
             num(row.mAP, ".2f"), num(row.n_params, ",.0f")]
            for row in table.itertuples(index=False)]
