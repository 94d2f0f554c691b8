"""The study report: MLflow runs of one study -> trial table, Pareto front, CSV/PNG/HTML on the parent run.

Reads only what the driver logs (one experiment per study; tags stage=study|pretrain|baseline|trial), so a report
can be rebuilt at any time from the tracking store, also while the study still runs.
"""

from __future__ import annotations

import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run

from study.pareto import pareto_front
from study.preflight import redact
from study.record import StudyError
from study.report_plots import write_html, write_png
from trainables.mlflow_runs import FINAL_KEYS

METRICS = (*FINAL_KEYS, "direct_mAP", "wall_time_s")
FLOAT_PARAMS = ("tau", "p", "backbone_lr", "gcn_lr")
TEXT_PARAMS = ("embedding", "backbone")
HEAD_PARAMS = ("embedding", "tau", "p", "pca_dim", "gcn_lr")  # what screening judges: matches a trial to its screening
COLUMNS = ("trial_id", "run_id", "level", "stopped_early", *METRICS, "embedding", "tau", "p", "pca_dim", "backbone",
           "backbone_lr", "gcn_lr", "head_key", "pareto")


def trial_table(client: MlflowClient, study: str) -> pd.DataFrame:
    """One row per finished trial (the latest run when a trial id finished twice), with the `pareto` flag.

    `level` is screen (head on cached features) or finetune; the front is the fine-tuned one: trials of
    level finetune that ran all their epochs (a scheduler's early stop is no full result).
    """
    runs = _latest_per_trial(_finished_runs(client, study, "trial"))
    rows = []
    for run in runs:
        params, metrics, tags = run.data.params, run.data.metrics, run.data.tags
        row: dict[str, Any] = {"trial_id": _trial_id(run), "run_id": run.info.run_id,
                               "level": tags.get("level", "finetune"),
                               "stopped_early": tags.get("stopped_early") == "true"}
        row.update({key: metrics.get(key, np.nan) for key in METRICS})
        row.update({key: params.get(key, "") for key in TEXT_PARAMS})
        row.update({key: params.get(key) for key in (*FLOAT_PARAMS, "pca_dim")})
        row["head_key"] = "|".join(params.get(k, "") if k != "pca_dim" or params.get("embedding") == "fpca" else ""
                                   for k in HEAD_PARAMS)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS[:-1]))
    for key in (*METRICS, *FLOAT_PARAMS):
        table[key] = pd.to_numeric(table[key], errors="coerce").astype(float)
    for key in ("n_params", "n_params_inference", "pca_dim"):
        table[key] = pd.to_numeric(table[key], errors="coerce").round().astype("Int64")
    table["stopped_early"] = table["stopped_early"].astype(bool)
    table = table.sort_values("trial_id", kind="stable").reset_index(drop=True)
    eligible = ((table["level"] == "finetune") & ~table["stopped_early"]).to_numpy()
    table["pareto"] = False
    if eligible.any():
        table.loc[eligible, "pareto"] = pareto_front(table[eligible])
    return table


def screening_agreement(trials: pd.DataFrame) -> tuple[float, int]:
    """How well screening predicted fine-tuning: Spearman's rank correlation between the screened mAP and
    the fine-tuned mAP of the promoted configurations that ran all their epochs, and how many there are."""
    from scipy.stats import spearmanr

    screened = trials[trials["level"] == "screen"].drop_duplicates("head_key").set_index("head_key")["mAP"]
    tuned = trials[(trials["level"] == "finetune") & ~trials["stopped_early"]]
    pairs = [(screened[key], m_ap) for key, m_ap in zip(tuned["head_key"], tuned["mAP"]) if key in screened.index]
    if len(pairs) < 3:
        return float("nan"), len(pairs)
    rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
    return float(rho), len(pairs)


def baseline_table(client: MlflowClient, study: str) -> pd.DataFrame:
    """The finished same-budget direct models (backbone + linear head trained as long as the trials):
    the baselines the front must beat."""
    rows = [{"run_id": run.info.run_id, "backbone": run.data.params.get("backbone", ""),
             "mAP": run.data.metrics.get("mAP", np.nan), "n_params": run.data.metrics.get("n_params", np.nan)}
            for run in _finished_runs(client, study, "baseline")]
    table = pd.DataFrame(rows, columns=["run_id", "backbone", "mAP", "n_params"])
    table["mAP"] = table["mAP"].astype(float)
    table["n_params"] = pd.to_numeric(table["n_params"]).round().astype("Int64")
    return table


def write_report(tracking_uri: str, study: str, out_dir: str | Path) -> dict[str, Any]:
    """Write trials.csv, pareto.png and pareto.html to `out_dir` and log them on the study's parent run."""
    client = MlflowClient(tracking_uri=tracking_uri)
    trials = trial_table(client, study)
    if trials.empty:
        raise StudyError(f"study {study!r} has no finished trials yet: resume the study (`imlgcn study resume "
                         f"{study}`) or wait for a trial to finish, then report")
    parent = _parent_run_id(client, study)
    baselines = baseline_table(client, study)
    front = trials[trials["pareto"]].sort_values(["n_params", "trial_id"]).reset_index(drop=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"csv": out / "trials.csv", "png": out / "pareto.png", "html": out / "pareto.html"}
    trials.to_csv(paths["csv"], index=False)
    write_png(trials, front, baselines, paths["png"], title=study)
    write_html(trials, front, baselines, paths["html"], title=study)
    for path in paths.values():
        client.log_artifact(parent, str(path), artifact_path="report")
    rho, pairs = screening_agreement(trials)
    return {**{key: str(path) for key, path in paths.items()}, "front": front, "trials": len(trials),
            "screened": int((trials["level"] == "screen").sum()), "agreement": (rho, pairs)}


def format_front(front: pd.DataFrame) -> str:
    """The front as a plain-text table for the CLI (pca_dim shown only for fpca trials)."""
    if front.empty:
        return "(no trial on the Pareto front)"
    pca = [str(int(k)) if e == "fpca" and not pd.isna(k) else "-" for e, k in zip(front["embedding"], front["pca_dim"])]
    table = pd.DataFrame({
        "trial_id": front["trial_id"].astype(str), "embedding": front["embedding"].astype(str),
        "tau": [f"{v:.3f}" for v in front["tau"]], "p": [f"{v:.3f}" for v in front["p"]], "pca_dim": pca,
        "mAP": [f"{v:.2f}" for v in front["mAP"]],
        "params_M": [f"{v / 1e6:.2f}" for v in front["n_params"].astype(float)],
    })
    return table.to_string(index=False)


def _experiment_id(client: MlflowClient, study: str) -> str:
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        raise StudyError(f"no MLflow experiment named {study!r} at {redact(client.tracking_uri)}: run `imlgcn study list` "
                         "to see the studies there, or pass the --tracking-uri the study used")
    return experiment.experiment_id


def _finished_runs(client: MlflowClient, study: str, stage: str) -> list[Run]:
    """Every FINISHED run of `stage` in the study's experiment, all pages."""
    experiment = _experiment_id(client, study)
    query = f"tags.stage = '{stage}' and attributes.status = 'FINISHED'"
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs([experiment], filter_string=query, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _trial_id(run: Run) -> str:
    return run.data.tags.get("trial_id") or run.info.run_id


def _latest_per_trial(runs: list[Run]) -> list[Run]:
    """A retried trial may have finished twice: keep the run that ended last, and say so."""
    by_trial: dict[str, list[Run]] = {}
    for run in runs:
        by_trial.setdefault(_trial_id(run), []).append(run)
    kept = []
    for trial_id, group in by_trial.items():
        group.sort(key=lambda run: run.info.end_time or 0)
        if len(group) > 1:
            warnings.warn(f"trial {trial_id} has {len(group)} finished runs: keeping {group[-1].info.run_id}, "
                          "the one that ended last", stacklevel=3)
        kept.append(group[-1])
    return kept


def _parent_run_id(client: MlflowClient, study: str) -> str:
    """The study's parent run: the stage=study run most finished trials point to, else the latest one."""
    experiment = _experiment_id(client, study)
    parents = client.search_runs([experiment], filter_string="tags.stage = 'study'",
                                 order_by=["attributes.start_time DESC"])
    if not parents:
        raise StudyError(f"study {study!r} has no parent run (tag stage=study): re-run `imlgcn study` "
                         "for it so the report has a run to attach to")
    children = Counter(run.data.tags.get("mlflow.parentRunId") for run in _finished_runs(client, study, "trial"))
    return max(parents, key=lambda run: children[run.info.run_id]).info.run_id
