"""The models a study keeps (`keep_checkpoints`), and `imlgcn study export`: register them in MLflow.

Every trial saves its final model to `<study>/models/<trial_id>` (see trainables.models.saved_model). With
keep_checkpoints=front, the folders of trials off the Pareto front are deleted when the study
finishes. Export logs a kept folder as the artifact `model` of the trial's MLflow run and registers
it as a version of the registered model `imlgcn-<study>`, tagged with the trial and its scores; the
folder carries the label names and timm's preprocessing, so `imlgcn predict --model models:/...`
needs nothing else.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Callable

import pandas as pd

from study.driver.record import StudyError, StudyRecord
from trainables.trial.mlflow_runs import store
from trainables.models.saved_model import META, read_meta, self_contained


def kept_model_dirs(record: StudyRecord) -> dict[str, Path]:
    """trial_id -> its saved model folder, for the trials whose folder is complete."""
    if not record.models_dir.is_dir():
        return {}
    return {p.name: p for p in sorted(record.models_dir.iterdir()) if (p / META).is_file()}


def prune_models(record: StudyRecord, trials: pd.DataFrame, progress: Callable[[str], None]) -> None:
    """Apply keep_checkpoints once the study finished: front keeps the Pareto trials' models only, all
    keeps every model. The per-epoch checkpoints (model + optimizer, only needed to resume a running
    trial or stage 1), Train's and Tune's (trials that train in their Tune process), are deleted unless
    keep_checkpoints=all: with TResNet-M they are ~0.35 GB a trial."""
    keep = record.base_config.get("keep_checkpoints", "front")
    if keep != "all":
        for folder in [*record.train_dir.glob("*/checkpoint_*"), *record.tune_dir.glob("*/trial_*/checkpoint_*")]:
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
    if keep != "front":
        return
    front = set(trials.loc[trials["pareto"], "trial_id"].astype(str))
    dropped = [folder for trial_id, folder in kept_model_dirs(record).items() if trial_id not in front]
    for folder in dropped:
        shutil.rmtree(folder, ignore_errors=True)
    if dropped:
        progress(f"kept the models of the {len(front)} Pareto trials, deleted {len(dropped)} others "
                 "(keep_checkpoints=front)")


def chosen_trials(trials: pd.DataFrame, trial_id: str | None, front: bool, study: str) -> pd.DataFrame:
    """The rows to export: one trial by id, or the Pareto front."""
    if trial_id:
        rows = trials[trials["trial_id"].astype(str) == trial_id]
        if rows.empty:
            raise StudyError(f"study {study!r} has no finished trial {trial_id!r}: see the trial ids in "
                             f"`imlgcn study report {study}`")
        return rows
    if front:
        return trials[trials["pareto"]]
    raise StudyError("study export needs --trial ID or --front")


def export_models(record: StudyRecord, tracking_uri: str, trial_id: str | None, front: bool,
                  progress: Callable[[str], None] = lambda text: None) -> list[dict]:
    """Register the chosen trials' models as versions of `imlgcn-<study>`, smallest first; one already
    registered is reused. Each model is an MLflow logged model of its trial's run (the runs table's Models
    column), folded and self-contained; the aliases `best` (highest mAP) and `smallest` (the study's size)
    point at the front's ends."""
    from study.reports.report import study_trials

    runs = store(tracking_uri)
    trials = study_trials(record, tracking_uri)
    size = record.size_metric
    rows = chosen_trials(trials, trial_id, front, record.name).sort_values([size, "trial_id"])
    kept = kept_model_dirs(record)
    missing = [t for t in rows["trial_id"].astype(str) if t not in kept]
    if missing:
        raise StudyError(f"trial {missing[0]} of study {record.name!r} kept no model (keep_checkpoints="
                         f"{record.base_config.get('keep_checkpoints', 'front')}): export a front trial, or rerun "
                         "the study with --set keep_checkpoints=all")
    name = f"imlgcn-{record.name}"
    registered = runs.registered_versions(name, description=f"IML-GCN models of study {record.name}")
    exported = []
    for n, row in enumerate(rows.itertuples(), 1):
        tid = str(row.trial_id)
        version = registered.get(tid)
        if version is None:
            progress(f"exporting trial {tid} ({n}/{len(rows)}): folding, logging and registering its model")
            meta = read_meta(kept[tid])
            tags = {"trial_id": tid, "mAP": f"{row.mAP:.2f}", "n_params": str(int(row.n_params)),
                    "n_params_inference": str(int(row.n_params_inference)) if row.n_params_inference is not pd.NA else "",
                    "backbone": meta["config"]["backbone"], "embedding": meta["config"]["embedding"],
                    "num_classes": str(len(meta["classes"])),
                    "input_size": "x".join(map(str, meta["preprocess"]["input_size"]))}
            with tempfile.TemporaryDirectory() as folder:  # folded, and a head-only model gets its backbone
                version = runs.register_model(name, record.experiment_id, row.run_id,
                                              self_contained(kept[tid], Path(folder) / "model"), tags, f"imlgcn-{tid}")
        else:
            progress(f"trial {tid} ({n}/{len(rows)}) is already version {version.version} of {name}")
        exported.append({"model": f"models:/{name}/{version.version}", "trial_id": tid,
                         "mAP": round(float(row.mAP), 2), "n_params": int(row.n_params),
                         size: float(getattr(row, size)), "version": str(version.version)})
    if front and exported:  # the front's ends on the study's own size
        best = max(exported, key=lambda e: (e["mAP"], -e[size]))
        smallest = min(exported, key=lambda e: (e[size], -e["mAP"]))
        for alias, chosen in (("best", best), ("smallest", smallest)):
            runs.set_alias(name, alias, chosen["version"])
            progress(f"alias models:/{name}@{alias} -> version {chosen['version']} (trial {chosen['trial_id']})")
    return [{k: v for k, v in e.items() if k != "version"} for e in exported]
