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
from trainables.mlflow_runs import FAILED, FINAL_KEYS, RUNNING, RunLog
from trainables.stage_cache import STAGE1_FIELDS, load_stage1, stage1_key

REFERENCES_MAX_FAILURES = 2


def reference_configs(record: StudyRecord) -> dict[str, TrialConfig]:
    """The baseline config of each level the study runs: `finetune` always, `screen` when it screens."""
    from study.tuner import level_config

    levels = {run["level"] for run in record.tune_runs.values()} | {"finetune"}
    return {level: baseline_config(TrialConfig(**level_config(record, level))) for level in sorted(levels)}


def ensure_references(record: StudyRecord, config: TrialConfig, cpus_per_worker: int,
                      progress: Callable[[str], None]) -> dict:
    """Stage 1 and the baselines unless cached, each with its finished MLflow run; returns the fine-tuning
    baseline's metrics."""
    from trainables.model import count_parameters

    key = stage1_key(config)
    runs = RunLog(record.tracking_uri)

    def logged(tag: str, value: str) -> bool:
        query = f"tags.{tag} = '{value}' and attributes.status = 'FINISHED'"
        return bool(runs.client.search_runs([record.experiment_id], query))

    references = reference_configs(record)
    keys = {level: baseline_key(direct) for level, direct in references.items()}
    stage1 = load_stage1(record.stage1_dir, key)
    if stage1 is not None and logged("pretrain_key", key):
        progress(f"stage 1 {key} already done (direct model mAP {stage1.metrics['mAP']:.2f})")
    missing = [level for level, bkey in keys.items() if not logged("baseline_key", bkey)]
    stored = {level: load_baseline(record.stage1_dir, bkey) for level, bkey in keys.items()}
    if not missing and all(stored.values()):
        progress(f"baseline {keys['finetune']} already done (same-budget direct model mAP "
                 f"{stored['finetune']['mAP']:.2f})")
        return stored["finetune"]
    parent = {"mlflow.parentRunId": record.parent_run_id}
    new_runs = []
    pretrain_run = ""
    if not logged("pretrain_key", key):
        pretrain_run = runs.create(record.experiment_id, f"pretrain-{config.backbone}",
                                   {"stage": "pretrain", "pretrain_key": key, **parent},
                                   {k: getattr(config, k) for k in STAGE1_FIELDS})
        new_runs.append(pretrain_run)
    baseline_runs = {}
    for level in missing:
        baseline_runs[level] = runs.create(
            record.experiment_id, f"baseline-{level}-{config.backbone}",
            {"stage": "baseline", "level": level, "baseline_key": keys[level], "pretrain_key": key, **parent},
            references[level].to_dict())
        new_runs.append(baseline_runs[level])
    try:
        if stage1 is None or not all(stored.values()):
            if stage1 is None:
                progress(f"stage 1 {key}: pretraining {config.backbone} for {config.pretrain_epochs} epochs")
            progress(f"baseline {keys['finetune']}: the direct model for {config.epochs} more epochs, as every "
                     "trial trains")
            context = dataclasses.replace(record.context(cpus_per_worker), run_id=baseline_runs.get("finetune", ""),
                                          pretrain_run_id=pretrain_run, stages="baseline")
            from trainables.trainable import torch_trainer

            torch_trainer(config, context, keys["finetune"], REFERENCES_MAX_FAILURES).fit()
        stage1 = load_stage1(record.stage1_dir, key)
        stored = {level: load_baseline(record.stage1_dir, bkey) for level, bkey in keys.items()}
        sizes = count_parameters(config.backbone, record.num_classes, "none")
        size_metrics = {"n_params": sizes["total"], "n_params_inference": sizes["inference"]}
        if pretrain_run:
            runs.finish(pretrain_run, {**{k: stage1.metrics[k] for k in FINAL_KEYS if k in stage1.metrics},
                                       **size_metrics}, step=0)
        for level, run_id in baseline_runs.items():
            runs.finish(run_id, {**{k: stored[level][k] for k in FINAL_KEYS if k in stored[level]}, **size_metrics},
                        step=references[level].epochs)
    except BaseException:
        for run_id in new_runs:
            if runs.status(run_id) == RUNNING:
                runs.close(run_id, FAILED)
        raise
    progress(f"baseline {keys['finetune']}: the direct model continued for the trials' budget reaches mAP "
             f"{stored['finetune']['mAP']:.2f}")
    return stored["finetune"]
