"""A study's reference runs, trained once per key before any trial starts: stage 1 (the pretrained
direct model whose backbone every trial starts from) and the same-budget baselines (that direct model
continued for exactly the trials' stage-3 budget: with its backbone for the fine-tuning level, on the
cached features for the screening level), which every trial's `direct_mAP` refers to and the report
draws. One MLflow run each (tags stage=pretrain / stage=baseline + level), under the study's parent run.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from study.record import StudyRecord
from trainables.baseline import baseline_config, baseline_key, load_baseline
from trainables.config import TrialConfig
from trainables.mlflow_runs import FAILED, FINAL_KEYS, RUNNING, RunLog, final_tags, store
from trainables.stage_cache import STAGE1_FIELDS, load_stage1, stage1_key


def reference_configs(record: StudyRecord) -> dict[str, TrialConfig]:
    """The baseline config of each level the study runs: `finetune` always, `screen` when it screens."""
    from study.tuner import level_config

    levels = {run["level"] for run in record.tune_runs.values()} | {"finetune"}
    return {level: baseline_config(TrialConfig(**level_config(record, level))) for level in sorted(levels)}


def ensure_references(record: StudyRecord, config: TrialConfig, cpus_per_worker: int,
                      progress: Callable[[str], None]) -> dict:
    """Stage 1 and the baselines unless cached, each with its finished MLflow run; returns the fine-tuning
    baseline's metrics."""
    key = stage1_key(config)
    runs = store(record.tracking_uri)
    references = reference_configs(record)
    keys = {level: baseline_key(direct) for level, direct in references.items()}
    stage1 = load_stage1(record.stage1_dir, key)
    pretrain_logged = _logged(runs, record, "pretrain_key", key)
    if stage1 is not None and pretrain_logged:
        progress(f"stage 1 {key} already done (direct model mAP {stage1.metrics['mAP']:.2f})")
    missing = [level for level, bkey in keys.items() if not _logged(runs, record, "baseline_key", bkey)]
    stored = {level: load_baseline(record.stage1_dir, bkey) for level, bkey in keys.items()}
    if not missing and all(stored.values()):
        progress(f"baseline {keys['finetune']} already done (same-budget direct model mAP "
                 f"{stored['finetune']['mAP']:.2f})")
        return stored["finetune"]
    new_runs = _open_runs(runs, record, config, key, keys, references, missing, pretrain_logged)
    try:
        if stage1 is None or not all(stored.values()):
            if stage1 is None:
                progress(f"stage 1 {key}: pretraining {config.backbone} for {config.pretrain_epochs} epochs")
            progress(f"baseline {keys['finetune']}: the direct model for {config.epochs} more epochs, as every "
                     "trial trains")
            from study.trainings import run_trainings

            context = dataclasses.replace(record.context(cpus_per_worker), stages="baseline",
                                          run_id=new_runs.get("finetune", ""), pretrain_run_id=new_runs.get("pretrain", ""))
            run_trainings({keys["finetune"]: (config, context)}, record.tune_dir, "references", 1, restore=True)
        stored = _close_runs(runs, record, config, key, keys, references, new_runs)
    except BaseException:
        for run_id in new_runs.values():
            if runs.status(run_id) == RUNNING:
                runs.close(run_id, FAILED)
        raise
    progress(f"baseline {keys['finetune']}: the direct model continued for the trials' budget reaches mAP "
             f"{stored['finetune']['mAP']:.2f}")
    return stored["finetune"]


def _logged(runs: RunLog, record: StudyRecord, tag: str, value: str) -> bool:
    query = f"tags.{tag} = '{value}' and attributes.status = 'FINISHED'"
    return bool(runs.search(record.experiment_id, query, max_results=1))


def _open_runs(runs: RunLog, record: StudyRecord, config: TrialConfig, key: str, keys: dict[str, str],
               references: dict[str, TrialConfig], missing: list[str], pretrain_logged: bool) -> dict[str, str]:
    """MLflow runs for what has none yet: {"pretrain": id, level: id}."""
    parent = {"mlflow.parentRunId": record.parent_run_id}
    opened = {}
    if not pretrain_logged:
        opened["pretrain"] = runs.create(record.experiment_id, f"pretrain-{config.backbone}",
                                         {"stage": "pretrain", "pretrain_key": key, **parent},
                                         {k: getattr(config, k) for k in STAGE1_FIELDS})
    for level in missing:
        opened[level] = runs.create(
            record.experiment_id, f"baseline-{level}-{config.backbone}",
            {"stage": "baseline", "level": level, "baseline_key": keys[level], "pretrain_key": key, **parent},
            references[level].to_dict())
    return opened


def _close_runs(runs: RunLog, record: StudyRecord, config: TrialConfig, key: str, keys: dict[str, str],
                references: dict[str, TrialConfig], opened: dict[str, str]) -> dict[str, dict]:
    """Final metrics and FINISHED on the opened runs; returns the stored baselines by level."""
    stage1 = load_stage1(record.stage1_dir, key)
    stored = {level: load_baseline(record.stage1_dir, bkey) for level, bkey in keys.items()}
    for name, run_id in opened.items():  # each measured its sizes where it trained (trainables.sizes)
        values = stage1.metrics if name == "pretrain" else stored[name]
        runs.finish(run_id, {k: float(values[k]) for k in FINAL_KEYS if k in values},
                    step=0 if name == "pretrain" else references[name].epochs, tags=final_tags(values))
    return stored
