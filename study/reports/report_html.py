"""The interactive report: one offline HTML page with the answer first, then the picture, then every trial.

- the report's headline (its answer) as the page's first line, then the front's table (baseline row, exact
  sizes, searched parameters, differences to the baseline);
- a plotly chart of mAP against the study's size (screened configurations faint, the fine-tuned front as a
  step line, the baselines as stars), whose hover shows every searched parameter of a trial; where every
  point has the same size within ties.SIZE_TOLERANCE, mAP by what varies instead (report_plots.shown_by: by
  embedding, a box per embedding, the direct models as horizontal lines) under a line saying why;
- a table of the trials, best first (the fine-tuned trials, then the screened ones, each by mAP), sortable
  by clicking a column header, each trial id a link to its MLflow run: every fine-tuned trial and the best
  SCREENED_ROWS screened ones by mAP (a sweep screens tens of thousands: all of them are in trials.csv
  beside the page).
plotly.js is embedded gzip-compressed (1.4 MB instead of 4.8 MB) and unpacked by the browser's
DecompressionStream, so the one file opens without a network and stays small; above WEBGL_POINTS screened
points they are drawn with WebGL and their hover shows the trial id, mAP and size only.
"""

from __future__ import annotations

import base64
import functools
import gzip
import html
from pathlib import Path
from typing import Callable

import pandas as pd
import plotly.graph_objects as go

from study.reports.front_table import front_rows
from study.reports.report_plots import ShownBy, axis, direct_names, shown_by
from trainables.embeddings import key_applies
from trainables.size_measures import PLANE_KEYS, SIZE_MEASURES

SCREENED_ROWS = 200
WEBGL_POINTS = 2000
PLOT_LOADER = """<script>
(async () => {
  const packed = Uint8Array.from(atob(document.getElementById("plotly-js-gzip").textContent), c => c.charCodeAt(0));
  const stream = new Blob([packed]).stream().pipeThrough(new DecompressionStream("gzip"));
  const code = document.createElement("script");
  code.text = await new Response(stream).text();
  document.head.appendChild(code);
  const figure = JSON.parse(document.getElementById("pareto-figure").textContent);
  Plotly.newPlot("pareto-plot", figure.data, figure.layout, {responsive: true});
})();
</script>"""
SORTER = """
<script>
function sortTable(header) {
  const table = header.closest("table"), body = table.tBodies[0];
  const column = Array.from(header.parentNode.children).indexOf(header);
  const ascending = header.dataset.order !== "asc";
  header.dataset.order = ascending ? "asc" : "desc";
  const key = row => { const text = row.children[column].innerText.replace(/,/g, "");
                       const number = parseFloat(text); return isNaN(number) ? text : number; };
  Array.from(body.rows).sort((a, b) => { const x = key(a), y = key(b);
      return (x > y ? 1 : x < y ? -1 : 0) * (ascending ? 1 : -1); }).forEach(row => body.appendChild(row));
}
</script>"""
STYLE = """<style>
body { font-family: sans-serif; margin: 1.5em; } h1 { font-size: 1.4em; } table { border-collapse: collapse; font-size: 13px; }
td, th { padding: 3px 8px; border-bottom: 1px solid #ddd; text-align: right; }
th { cursor: pointer; background: #f3f3f3; position: sticky; top: 0; } td:first-child, th:first-child { text-align: left; }
tr.front td { font-weight: bold; } tr.screen td { color: #888; }
</style>"""


def _hover(table: pd.DataFrame, searched: list[str], size: str = "n_params") -> list[str]:
    """One hover text per trial: its id, level, every searched parameter, mAP and exact size."""
    texts = []
    for row in table.to_dict("records"):
        lines = [f"trial {row['trial_id']} ({row['level']})"]
        lines += [f"{k} {_fmt(k, row.get(k))}" for k in searched
                  if key_applies(k, row.get("embedding"))]
        lines += [f"mAP {row['mAP']:.2f}", f"n_params {int(row['n_params']):,}"]
        if size != "n_params" and row.get(size) is not pd.NA and row.get(size) == row.get(size):
            lines.append(f"{size} {float(row[size]):,.6g}")
        texts.append("<br>".join(lines))
    return texts


def _fmt(key: str, value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and value != value) or value == "":
        return "-"
    if key.endswith("_lr"):
        return f"{float(value):.2e}"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def figure(trials: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, searched: list[str],
           title: str, size: str = "n_params") -> go.Figure:
    """mAP against `size` (see trainables.size_measures) with every searched parameter in the hover; mAP by
    report_plots.shown_by's key where every point has the same size."""
    by = shown_by(trials, baselines, size, searched)
    if by is not None:
        return _figure_by(trials, front, baselines, searched, title, size, by)
    fig = go.Figure()
    size_axis = SIZE_MEASURES[size].axis
    screened = trials[trials["level"] == "screen"]
    rest = trials[~trials["pareto"] & (trials["level"] != "screen")]
    hover = "%{text}<extra></extra>"
    if len(screened) > WEBGL_POINTS:  # a sweep: WebGL, and a short hover (the full one is in trials.csv)
        fig.add_trace(go.Scattergl(x=axis(screened, size), y=screened["mAP"], mode="markers", opacity=0.35,
                                   name="screened (head on cached features)", marker={"color": "#bbbbbb", "size": 4},
                                   text=screened["trial_id"].astype(str),
                                   hovertemplate="trial %{text} (screen)<br>mAP %{y:.2f}<br>" + size_axis
                                                 + " %{x:.4g}<extra></extra>"))
    elif len(screened):
        fig.add_trace(go.Scatter(x=axis(screened, size), y=screened["mAP"], mode="markers", opacity=0.35,
                                 name="screened (head on cached features)", marker={"color": "#bbbbbb", "size": 5},
                                 text=_hover(screened, searched, size), hovertemplate=hover))
    fig.add_trace(go.Scatter(x=axis(rest, size), y=rest["mAP"], mode="markers", name="fine-tuned",
                             marker={"color": "#777777", "size": 7}, text=_hover(rest, searched, size), hovertemplate=hover))
    fig.add_trace(go.Scatter(x=axis(front, size), y=front["mAP"], mode="lines+markers", name="Pareto front",
                             line={"shape": "hv", "color": "#1f77b4"}, marker={"size": 9},
                             text=_hover(front, searched, size), hovertemplate=hover))
    for level, symbol, opacity in (("finetune", "star", 1.0), ("screen", "star-open", 0.5)):
        chosen = baselines[baselines["level"] == level]
        if len(chosen):
            fig.add_trace(go.Scatter(
                x=axis(chosen, size), y=chosen["mAP"], mode="markers", opacity=opacity,
                name="direct model, same budget" + (" (screening)" if level == "screen" else ""),
                marker={"symbol": symbol, "size": 14, "color": "#d62728"}, text=direct_names(chosen),
                hovertemplate="direct model %{text}<br>mAP %{y:.2f}<br>" + size_axis + " %{x:.4g}<extra></extra>"))
    fig.update_layout(title=title, xaxis_title=size_axis, yaxis_title="mAP (%)",
                      template="plotly_white", height=520)
    return fig


def _figure_by(trials: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, searched: list[str], title: str,
               size: str, by: ShownBy) -> go.Figure:
    """mAP by `by.key`: the screened trials as a box per category (their points too, up to WEBGL_POINTS) or
    as points against a number, the fine-tuned trials and the front as points, each direct model a line."""
    fig = go.Figure()
    screened = trials[trials["level"] == "screen"]
    rest = trials[~trials["pareto"] & (trials["level"] != "screen")]
    hover = "%{text}<extra></extra>"
    few = len(screened) <= WEBGL_POINTS
    if len(screened) and by.categorical:
        fig.add_trace(go.Box(x=by.values(screened), y=screened["mAP"], name="screened (head on cached features)",
                             boxpoints="all" if few else False, jitter=0.5, pointpos=0, marker={"color": "#bbbbbb", "size": 4},
                             line={"color": "#999999"}, text=_hover(screened, searched, size) if few else None,
                             hovertemplate=hover if few else None, hoveron="points" if few else "boxes"))
    elif len(screened):
        scatter = go.Scatter if few else go.Scattergl
        fig.add_trace(scatter(x=by.values(screened), y=screened["mAP"], mode="markers", opacity=0.35,
                              name="screened (head on cached features)", marker={"color": "#bbbbbb", "size": 5 if few else 4},
                              text=_hover(screened, searched, size) if few else screened["trial_id"].astype(str),
                              hovertemplate=hover if few else "trial %{text} (screen)<br>mAP %{y:.2f}<extra></extra>"))
    for part, name, marker in ((rest, "fine-tuned", {"color": "#777777", "size": 8}),
                               (front, "Pareto front", {"color": "#1f77b4", "size": 10})):
        fig.add_trace(go.Scatter(x=by.values(part), y=part["mAP"], mode="markers", name=name, marker=marker,
                                 text=_hover(part, searched, size), hovertemplate=hover))
    for m_ap, name in zip(baselines["mAP"], direct_names(baselines)):
        fig.add_hline(y=float(m_ap), line={"color": "#d62728", "dash": "dash"},
                      annotation_text=f"direct model {name}: {float(m_ap):.2f}", annotation_position="top left")
    fig.update_layout(title=title.replace("vs model size", f"by {by.key}"), xaxis_title=by.key, yaxis_title="mAP (%)",
                      template="plotly_white", height=520, boxmode="overlay")
    if by.categorical:
        fig.update_xaxes(type="category", categoryorder="array", categoryarray=by.categories(trials))
    elif by.key.endswith("_lr"):
        fig.update_xaxes(type="log")
    return fig


def _table(frame: pd.DataFrame, table_id: str, row_class: Callable[[dict], str] | None = None,
           links: dict[str, str] | None = None) -> str:
    head = "".join(f'<th onclick="sortTable(this)">{html.escape(str(c))}</th>' for c in frame.columns)
    rows = []
    for record in frame.to_dict("records"):
        cells = []
        for column, value in record.items():
            text = html.escape("" if value is None or value is pd.NA else str(value))
            if links and column in ("trial", "model") and str(value) in links:
                text = f'<a href="{html.escape(links[str(value)])}" target="_blank">{text}</a>'
            cells.append(f"<td>{text}</td>")
        css = f' class="{row_class(record)}"' if row_class else ""
        rows.append(f"<tr{css}>{''.join(cells)}</tr>")
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


@functools.lru_cache(maxsize=1)
def _plotly_js_gzip() -> str:
    """plotly.js of the installed plotly package, gzip-compressed, base64."""
    from plotly.offline import get_plotlyjs

    return base64.b64encode(gzip.compress(get_plotlyjs().encode(), compresslevel=9, mtime=0)).decode()


def chart_html(fig: go.Figure) -> str:
    """The chart as a div, its figure as JSON and the loader that unpacks plotly.js and draws it."""
    figure = fig.to_json().replace("</", "<\\/")  # no "</script>" inside the JSON
    return (f'<div id="pareto-plot" style="height:520px"></div>\n'
            f'<script id="plotly-js-gzip" type="application/octet-stream">{_plotly_js_gzip()}</script>\n'
            f'<script id="pareto-figure" type="application/json">{figure}</script>\n{PLOT_LOADER}')


def table_rows(trials: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """The trials the page lists, best first: every fine-tuned trial by mAP, then the screened ones by mAP
    (the best SCREENED_ROWS of them where there are more); and the table's heading."""
    screened = trials["level"] == "screen"
    by_map = {"by": "mAP", "ascending": False, "kind": "stable", "na_position": "last"}  # ties: trial id order
    tuned, best = trials[~screened].sort_values(**by_map), trials[screened].sort_values(**by_map)
    order = "fine-tuned first, then screened, each by mAP; click a column to sort; a trial id opens its MLflow run"
    if screened.sum() <= SCREENED_ROWS:
        return pd.concat([tuned, best]), f"All {len(trials)} trials ({order})"
    shown = pd.concat([tuned, best.head(SCREENED_ROWS)])
    return shown, (f"The {int((~screened).sum())} fine-tuned trials and the best {SCREENED_ROWS} of "
                   f"{int(screened.sum())} screened configurations by mAP (all {len(trials)}: trials.csv beside "
                   f"this page; {order})")


def write_html(trials: pd.DataFrame, front: pd.DataFrame, baselines: pd.DataFrame, searched: list[str], path: Path,
               study: str, headline: str, size: str, run_link: Callable[[str], str],
               front_table: pd.DataFrame | None = None, notes: list[str] | tuple[str, ...] = ()) -> None:
    """The whole page (see the module docstring). `front_table` replaces the front's rows (a size plane's,
    with every direct model) and `notes` (the plane's answer) follow the headline."""
    base = baselines[baselines["level"] == "finetune"]
    base_row = base.iloc[-1] if len(base) else None
    chart = chart_html(figure(trials, front, baselines, searched, f"{study}: mAP vs model size", size))
    by = shown_by(trials, baselines, size, searched)
    chart_note = f"<p>{html.escape(by.note)}</p>\n" if by is not None else ""
    trials, heading = table_rows(trials)
    trials = trials.reset_index(drop=True)  # the rows below in the table's order
    all_rows = pd.DataFrame({
        "trial": trials["trial_id"].astype(str), "level": trials["level"],
        **{k: [_fmt(k, v) if key_applies(k, e) else "-" for v, e in zip(trials[k], trials["embedding"])]
           for k in searched if k in trials},
        "mAP": [f"{v:.2f}" for v in trials["mAP"]],
        "mAP vs direct": [f"{m - d:+.2f}" if d == d else "" for m, d in zip(trials["mAP"], trials["direct_mAP"])],
        **{SIZE_MEASURES[k].column: [SIZE_MEASURES[k].cell(v) for v in trials[k]] for k in PLANE_KEYS},
        "pareto": trials["pareto"].map({True: "yes", False: ""}),
        "stopped early": trials["stopped_early"].map({True: "yes", False: ""}),
    })
    if "dominated_by" in trials:
        all_rows.insert(len(all_rows.columns) - 2, "dominated by", trials["dominated_by"].fillna(""))
    links = {str(t): run_link(r) for t, r in zip(trials["trial_id"], trials["run_id"])}
    links.update({f"trial {t}": url for t, url in links.items()})
    if front_table is None:
        front_table = front_rows(front, base_row, searched, size)
    answer = "".join(f"<p><b>{html.escape(line)}</b></p>" for line in notes)
    page = f"""<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(study)}: study report</title>
{STYLE}{SORTER}</head><body>
<h1>{html.escape(headline)}</h1>
{answer}
<p>Study <b>{html.escape(study)}</b></p>
{_table(front_table, "front-table", links=links)}
{chart_note}{chart}
<h2>{html.escape(heading).replace("trials.csv", '<a href="trials.csv">trials.csv</a>')}</h2>
{_table(all_rows, "trials-table", row_class=lambda r: "front" if r["pareto"] else ("screen" if r["level"] == "screen" else ""),
        links=links)}
</body></html>"""
    path.write_text(page, encoding="utf-8")
