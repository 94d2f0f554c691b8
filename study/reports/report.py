"""The study report: MLflow runs of one study -> trial table, Pareto front, CSV/PNG/HTML on the parent run.

Reads only what the driver logs (one experiment per study; tags stage=study|pretrain|baseline|trial), so a report
can be rebuilt at any time from the tracking store, also while the study still runs.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from study.reports.answer import base_config, compare_files, head_only_answer, plane_noise, same_size_note
from study.reports.plane import answer, dominating_direct, eligible, format_plane, is_plane, plane_front, plane_rows
from study.reports.ties import SIZE_TOLERANCE, front as tolerant_front
from study.driver.preflight import redact
from study.driver.record import StudyError, StudyRecord
from study.reports.report_plots import write_png
from trainables.config import HEAD, SEARCH, TrialConfig, keys_of
from trainables.embeddings import key_applies
from trainables.size_measures import COUNT_KEYS, SIZE_KEYS
from trainables.trial.mlflow_runs import FINAL_KEYS, RunLog, store
from trainables.trial.run_markers import LoggedRun

UI_ADDRESS = "http://127.0.0.1:5000"  # where `mlflow ui` listens by default
# MLflow 3.17's UI chooses its GenAI or model-training view from this URL parameter (else from the
# browser's last choice, GenAI at first), not from the experiment's kind tag: without it a study's
# experiment opens on an empty GenAI overview instead of its runs (seen in a screenshot).
UI_VIEW = "?workflowType=machine_learning"


def experiment_url(base: str, experiment_id: str) -> str:
    """The experiment's runs table in the MLflow UI at `base`."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}{UI_VIEW}"

METRICS = (*FINAL_KEYS, "direct_mAP", "wall_time_s")
SEARCHED = keys_of(SEARCH)  # the report's parameter columns, in declaration order (see trainables.config)
HEAD_KEY = keys_of(HEAD)  # what screening judges: a fine-tuned trial's head key finds its screening
KINDS = {f.name: f.type for f in fields(TrialConfig)}  # str | int | float | bool: how a column is parsed
COLUMNS = ("trial_id", "run_id", "level", "pareto_tag", "stopped_early", *METRICS, *SEARCHED, "head_key", "pareto")


def trial_table(runs: RunLog, study: str, size: str = "n_params", finished: list[LoggedRun] | None = None,
                tolerance: float = SIZE_TOLERANCE) -> pd.DataFrame:
    """One row per finished trial (the latest run when a trial id finished twice), with the `pareto` flag
    on (max mAP, min `size`, sizes within `tolerance` the same: study.reports.ties); `finished`: the study's
    FINISHED trial runs when the caller has read them (`finished_trial_runs`), else every one read from MLflow.

    `level` is screen (head on cached features) or finetune; the front is the fine-tuned one: trials of
    level finetune that ran all their epochs (a scheduler's early stop is no full result).
    """
    runs = _latest_per_trial(_finished_runs(runs, study, "trial") if finished is None else finished)
    rows = []
    for run in runs:
        params, metrics, tags = run.params, run.metrics, run.tags
        row: dict[str, Any] = {"trial_id": run.trial_id, "run_id": run.run_id,
                               "level": tags.get("level", "finetune"), "pareto_tag": tags.get("pareto"),
                               "stopped_early": tags.get("stopped_early") == "true"}
        row.update({key: metrics.get(key, np.nan) for key in METRICS})
        row.update({key: params.get(key, "") for key in SEARCHED})
        row["head_key"] = "|".join(params.get(k, "") if key_applies(k, params.get("embedding")) else ""
                                   for k in HEAD_KEY)
        rows.append(row)
    table = pd.DataFrame(rows, columns=list(COLUMNS[:-1]))
    for key in (*METRICS, *(k for k in SEARCHED if KINDS[k] == "float")):
        table[key] = pd.to_numeric(table[key], errors="coerce").astype(float)
    for key in (*COUNT_KEYS, *(k for k in SEARCHED if KINDS[k] == "int")):
        table[key] = pd.to_numeric(table[key], errors="coerce").round().astype("Int64")
    table["stopped_early"] = table["stopped_early"].astype(bool)
    searched = searched_params(runs)
    for key in searched:  # any other varying key gets its column too (text: as MLflow stores it)
        if key not in table.columns:
            table[key] = [run.params.get(key, "") for run in runs]
    table = table.sort_values("trial_id", kind="stable").reset_index(drop=True)
    table.attrs["searched"] = searched
    tuned = ((table["level"] == "finetune") & ~table["stopped_early"]).to_numpy()
    table["pareto"] = False
    if tuned.any():
        chosen = table[tuned]
        table.loc[tuned, "pareto"] = tolerant_front(chosen["mAP"], chosen[size].astype(float), tolerance)
    return table


def searched_params(runs: list[LoggedRun]) -> list[str]:
    """The config keys that differ between the fine-tuned trials (what the study searched), in a stable
    order: the head's first (as screening judges them), then the rest alphabetically."""
    tuned = [r for r in runs if r.tags.get("level", "finetune") == "finetune"] or runs
    keys = {k for r in tuned for k in r.params}
    varying = {k for k in keys if len({r.params.get(k) for r in tuned}) > 1}
    if any(r.params.get("embedding", "none") != "none" for r in tuned):  # a GCN's head is always shown
        varying |= {k for k in SEARCHED if k in HEAD_KEY and k in keys}
    return [k for k in SEARCHED if k in varying] + sorted(varying - set(SEARCHED))


AGREEMENT_PAIRS = 3  # a rank correlation over fewer promoted configurations says nothing


def screening_agreement(trials: pd.DataFrame) -> tuple[float, int]:
    """How well screening predicted fine-tuning: Spearman's rank correlation between the screened mAP and
    the fine-tuned mAP of the promoted configurations that ran all their epochs, and how many there are."""
    from scipy.stats import spearmanr

    screened = trials[trials["level"] == "screen"].drop_duplicates("head_key").set_index("head_key")["mAP"]
    tuned = trials[(trials["level"] == "finetune") & ~trials["stopped_early"]]
    pairs = [(screened[key], m_ap) for key, m_ap in zip(tuned["head_key"], tuned["mAP"]) if key in screened.index]
    if len(pairs) < AGREEMENT_PAIRS:
        return float("nan"), len(pairs)
    rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
    return float(rho), len(pairs)


def baseline_table(runs: RunLog, study: str) -> pd.DataFrame:
    """The finished same-budget direct models (backbone + linear head trained as long as the trials):
    the baselines the front must beat; `level` says which trials each one is the reference of."""
    rows = [{"run_id": run.run_id, "backbone": run.params.get("backbone", ""),
             "image_size": pd.to_numeric(run.params.get("image_size"), errors="coerce"),
             "level": run.tags.get("level", "finetune"), "mAP": run.metrics.get("mAP", np.nan),
             **{key: run.metrics.get(key, np.nan) for key in SIZE_KEYS}}
            for run in _finished_runs(runs, study, "baseline")]
    table = pd.DataFrame(rows, columns=["run_id", "backbone", "image_size", "level", "mAP", *SIZE_KEYS])
    for key in ("mAP", *SIZE_KEYS):
        table[key] = table[key].astype(float)
    for key in COUNT_KEYS:
        table[key] = pd.to_numeric(table[key]).round().astype("Int64")
    return table


def study_trials(record: StudyRecord, tracking_uri: str | None = None) -> pd.DataFrame:
    """The study's trial table as its report reads it (screened rows from their run markers): what
    `study export` and keep_checkpoints=front choose from. `tracking_uri`: the store's address when the
    caller was given another for it (the record's otherwise)."""
    runs = store(tracking_uri or record.tracking_uri)
    return trial_table(runs, record.name, record.size_metric,
                       finished_trial_runs(runs, record.name, record.screened_markers()))


def reference(baselines: pd.DataFrame) -> pd.Series | None:
    """The baseline the fine-tuned front is compared with (the fine-tuning level's)."""
    tuned = baselines[baselines["level"] == "finetune"]
    return tuned.iloc[-1] if len(tuned) else None


def write_report(tracking_uri: str, study: str, out_dir: str | Path, size: str = "n_params",
                 screened: dict[str, str] | None = None, tolerance: float = SIZE_TOLERANCE) -> dict[str, Any]:
    """Write trials.csv, front.txt, pareto.png and pareto.html to `out_dir` for the front on (max mAP,
    min `size`, sizes within `tolerance` the same), led by the answer (study.reports.answer; the files of
    the `imlgcn compare` command it names go there too), log them on the study's parent run with its
    summary metrics, and keep every trial run's `pareto` tag current. `screened`: see finished_trial_runs."""
    from study.reports.front_table import format_front, front_rows
    from study.reports.report_html import write_html

    runs = store(tracking_uri)
    finished = finished_trial_runs(runs, study, screened)  # read once: a sweep has tens of thousands
    trials = trial_table(runs, study, size, finished, tolerance)
    if trials.empty:
        raise StudyError(f"study {study!r} has no finished trials yet: resume the study (`imlgcn study resume "
                         f"{study}`) or wait for a trial to finish, then report")
    searched = trials.attrs.get("searched", [])
    parent_run = _parent_run(runs, study, finished)
    parent = parent_run.info.run_id
    baselines = baseline_table(runs, study)
    base = reference(baselines)
    finetuned = int((trials["level"] == "finetune").sum())
    screened = int((trials["level"] == "screen").sum())
    directs = baselines[baselines["level"] == "finetune"].reset_index(drop=True)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    command = compare_files(out, study, base_config(parent_run.data.params))
    if is_plane(directs):  # the front over the trials and every point's direct model together
        trials["pareto"], direct_front = plane_front(trials, directs, size, tolerance)
        trials["dominated_by"] = [name if tuned else "" for name, tuned in
                                  zip(dominating_direct(trials, directs, size, tolerance), eligible(trials))]
        noise = plane_noise(trials, directs, size, command)
        headline = answer(trials, directs, size, noise, tolerance)
        text = format_plane(trials, directs, direct_front, searched, size, screened, noise, tolerance)
        front_table = plane_rows(trials[trials["pareto"]], directs, direct_front, searched, size)
    front = trials[trials["pareto"]].sort_values([size, "trial_id"]).reset_index(drop=True)
    if not is_plane(directs):
        headline = head_only_answer(trials, base, size, command, tolerance)
        text = format_front(front, base, searched, finetuned, screened, size,
                            same_size_note(trials, base, size, tolerance), tolerance)
        front_table = front_rows(front, base, searched, size, tolerance)
    notes = [text.splitlines()[0]]  # the page: the answer, then the front's title
    text = f"{headline}\n{text}"
    paths = {"csv": out / "trials.csv", "txt": out / "front.txt", "png": out / "pareto.png", "html": out / "pareto.html"}
    trials.drop(columns="pareto_tag").to_csv(paths["csv"], index=False)  # the tag as it was: now `pareto`
    paths["txt"].write_text(text + "\n")
    write_png(trials, front, directs if is_plane(directs) else baselines, paths["png"], title=study, size=size)
    experiment = _experiment_id(runs, study)
    write_html(trials, front, baselines, searched, paths["html"], study, headline, size,
               run_link=lambda run_id: run_url(tracking_uri, experiment, run_id), front_table=front_table, notes=notes)
    for path in paths.values():
        runs.log_artifact(parent, path, "report")
    rho, pairs = screening_agreement(trials)
    _tag_front(runs, trials)
    failed = len(runs.search(experiment, "tags.stage = 'trial' and attributes.status = 'FAILED'"))
    summary = {"front_size": len(front), "trials_finished": finetuned, "trials_failed": failed,
               "trials_screened": screened, "best_mAP": float(front["mAP"].max()) if len(front) else float("nan"),
               "baseline_mAP": float(base["mAP"]) if base is not None else float("nan"),
               "screening_rank_correlation": rho}
    runs.log_metrics(parent, {k: v for k, v in summary.items() if v == v}, step=0)
    return {**{key: str(path) for key, path in paths.items()}, "front": front, "trials": len(trials),
            "screened": screened, "agreement": (rho, pairs), "text": text}


def run_url(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    """The run's page in the MLflow UI: on the tracking server, or on `mlflow ui`'s default address for a
    SQLite store (see the command the study prints at its end)."""
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else UI_ADDRESS
    return f"{redact(base)}/#/experiments/{experiment_id}/runs/{run_id}{UI_VIEW}"


def _tag_front(runs: RunLog, trials: pd.DataFrame) -> None:
    """Set the `pareto` tag (true / false) of every fine-tuned trial run whose membership changed. The front
    is made of fine-tuned trials: a screened run has no such tag (a sweep's thousands of screened runs
    would cost as many MLflow writes at its first report)."""
    tuned = trials[trials["level"] != "screen"]
    for run_id, on_front, old in zip(tuned["run_id"], tuned["pareto"], tuned["pareto_tag"]):
        value = "true" if on_front else "false"
        if old != value:
            runs.set_tags(run_id, {"pareto": value})


def _experiment_id(runs: RunLog, study: str) -> str:
    experiment = runs.find_experiment(study)
    if experiment is None:
        raise StudyError(f"no MLflow experiment named {study!r} at {redact(runs.tracking_uri)}: run `imlgcn study list` "
                         "to see the studies there, or pass the --tracking-uri the study used")
    return experiment


def _finished_runs(runs: RunLog, study: str, stage: str) -> list[LoggedRun]:
    """Every FINISHED run of `stage` in the study's experiment, all pages."""
    return runs.search_logged(_experiment_id(runs, study), f"tags.stage = '{stage}' and attributes.status = 'FINISHED'")


def finished_trial_runs(runs: RunLog, study: str, screened: dict[str, str] | None = None) -> list[LoggedRun]:
    """Every FINISHED trial run of the study. With `screened` (every screening Tune run of the study -> the
    folder its trials mark their runs in, `StudyRecord.screened_markers`), the screened runs are read from
    their markers and only the others from MLflow: a sweep's tens of thousands of screened runs take
    seconds, not minutes (see trainables.trial.run_markers)."""
    if screened is None:
        return _finished_runs(runs, study, "trial")
    experiment = _experiment_id(runs, study)
    rows = [run for tune_run, folder in screened.items() for run in runs.recorded_trials(
        folder, experiment, f"tags.stage = 'trial' and tags.level = 'screen' and tags.tune_run = '{tune_run}'")]
    return rows + runs.search_logged(experiment, "tags.stage = 'trial' and tags.level != 'screen' and "
                                                 "attributes.status = 'FINISHED'")


def _latest_per_trial(runs: list[LoggedRun]) -> list[LoggedRun]:
    """A retried trial may have finished twice: keep the run that ended last, and say so."""
    by_trial: dict[str, list[LoggedRun]] = {}
    for run in runs:
        by_trial.setdefault(run.trial_id, []).append(run)
    kept = []
    for trial_id, group in by_trial.items():
        group.sort(key=lambda run: run.end_time or 0)
        if len(group) > 1:
            warnings.warn(f"trial {trial_id} has {len(group)} finished runs: keeping {group[-1].run_id}, "
                          "the one that ended last", stacklevel=3)
        kept.append(group[-1])
    return kept


def _parent_run(runs: RunLog, study: str, finished: list[LoggedRun]):
    """The study's parent run: the stage=study run most `finished` trials point to, else the latest one."""
    parents = runs.search(_experiment_id(runs, study), "tags.stage = 'study'", order_by=["attributes.start_time DESC"])
    if not parents:
        raise StudyError(f"study {study!r} has no parent run (tag stage=study): re-run `imlgcn study` "
                         "for it so the report has a run to attach to")
    children = Counter(run.tags.get("mlflow.parentRunId") for run in finished)
    return max(parents, key=lambda run: children[run.info.run_id])
