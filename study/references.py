"""A study's reference runs, trained once per key before any trial starts: stage 1 (the pretrained
direct model whose backbone every trial starts from) and the same-budget baseline (that direct model
continued for exactly the trials' stage-3 budget), which every trial's `direct_mAP` refers to and the
report draws. One MLflow run each (tags stage=pretrain / stage=baseline), under the study's parent run.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from study.record import StudyRecord
from trainables.baseline import baseline_config, baseline_key, load_baseline
from trainables.config import TrialConfig
from trainables.mlflow_runs import FINAL_KEYS, RunLog
from trainables.stage_cache import STAGE1_FIELDS, load_stage1, stage1_key

REFERENCES_MAX_FAILURES = 2


def ensure_references(record: StudyRecord, config: TrialConfig, cpus_per_worker: int,
                      progress: Callable[[str], None]) -> dict:
    """Stage 1 and the baseline unless cached, each with its finished MLflow run; returns the baseline's metrics."""
    from trainables.model import count_parameters

    key, bkey = stage1_key(config), baseline_key(config)
    runs = RunLog(record.tracking_uri)

    def finished(tag: str, value: str) -> bool:
        query = f"tags.{tag} = '{value}' and attributes.status = 'FINISHED'"
        return bool(runs.client.search_runs([record.experiment_id], query))

    stage1, baseline = load_stage1(record.stage1_dir, key), load_baseline(record.stage1_dir, bkey)
    pretrain_logged, baseline_logged = finished("pretrain_key", key), finished("baseline_key", bkey)
    if stage1 is not None and pretrain_logged:
        progress(f"stage 1 {key} already done (direct model mAP {stage1.metrics['mAP']:.2f})")
    if baseline is not None and baseline_logged:
        progress(f"baseline {bkey} already done (same-budget direct model mAP {baseline['mAP']:.2f})")
        return baseline
    parent = {"mlflow.parentRunId": record.parent_run_id}
    pretrain_run = "" if pretrain_logged else runs.create(
        record.experiment_id, f"pretrain-{config.backbone}", {"stage": "pretrain", "pretrain_key": key, **parent},
        {k: getattr(config, k) for k in STAGE1_FIELDS})
    direct = baseline_config(config)
    baseline_run = runs.create(record.experiment_id, f"baseline-{config.backbone}",
                               {"stage": "baseline", "baseline_key": bkey, "pretrain_key": key, **parent},
                               direct.to_dict())
    try:
        _train(config, record, cpus_per_worker, pretrain_run, baseline_run, bkey, stage1, baseline, progress)
        stage1, baseline = load_stage1(record.stage1_dir, key), load_baseline(record.stage1_dir, bkey)
        sizes = count_parameters(config.backbone, record.num_classes, "none")
        size_metrics = {"n_params": sizes["total"], "n_params_inference": sizes["inference"]}
        if pretrain_run:
            runs.finish(pretrain_run, {**{k: stage1.metrics[k] for k in FINAL_KEYS if k in stage1.metrics},
                                       **size_metrics}, step=0)
        runs.finish(baseline_run, {**{k: baseline[k] for k in FINAL_KEYS if k in baseline}, **size_metrics},
                    step=direct.epochs)
    except BaseException:
        for run_id in filter(None, (pretrain_run, baseline_run)):
            if runs.status(run_id) == "RUNNING":
                runs.close(run_id, "FAILED")
        raise
    progress(f"baseline {bkey}: the direct model continued for the trials' budget reaches mAP {baseline['mAP']:.2f}")
    return baseline


def _train(config: TrialConfig, record: StudyRecord, cpus_per_worker: int, pretrain_run: str, baseline_run: str,
           bkey: str, stage1, baseline, progress: Callable[[str], None]) -> None:
    """One TorchTrainer for what is missing: stage 1 (if not cached) and the baseline (if not cached)."""
    from trainables.trainable import torch_trainer

    if stage1 is not None and baseline is not None:
        return
    if stage1 is None:
        progress(f"stage 1 {stage1_key(config)}: pretraining {config.backbone} for {config.pretrain_epochs} epochs")
    progress(f"baseline {bkey}: the direct model for {config.epochs} more epochs, as every trial trains")
    context = dataclasses.replace(record.context(cpus_per_worker), run_id=baseline_run, pretrain_run_id=pretrain_run,
                                  stages="baseline")
    torch_trainer(config, context, bkey, REFERENCES_MAX_FAILURES).fit()
