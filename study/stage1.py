"""Stage 1 of a study, run once per key on the driver's behalf before any trial starts.

The direct model it trains is the study's baseline: one MLflow run per key (tag stage=pretrain) with
its validation metrics and parameter count, drawn on the Pareto plot for reference.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Callable

from study.record import StudyRecord
from trainables.config import TrialConfig
from trainables.mlflow_runs import FINAL_KEYS, RunLog
from trainables.stage_cache import STAGE1_FIELDS, load_stage1, stage1_key

STAGE1_MAX_FAILURES = 2


def ensure_stage1(record: StudyRecord, config: TrialConfig, cpus_per_worker: int,
                  progress: Callable[[str], None]) -> dict:
    """Pretrain + embed unless the key is cached; make sure the study has its baseline run."""
    from trainables.model import count_parameters
    from trainables.trainable import torch_trainer

    key = stage1_key(config)
    runs = RunLog(record.tracking_uri)
    found = runs.client.search_runs([record.experiment_id],
                                    f"tags.pretrain_key = '{key}' and attributes.status = 'FINISHED'")
    cached = load_stage1(record.stage1_dir, key)
    if cached is not None and found:
        progress(f"stage 1 {key} already done (direct model mAP {cached.metrics['mAP']:.2f})")
        return cached.metrics
    tags = {"stage": "pretrain", "pretrain_key": key, "mlflow.parentRunId": record.parent_run_id}
    run_id = runs.create(record.experiment_id, f"pretrain-{config.backbone}", tags,
                         {k: getattr(config, k) for k in STAGE1_FIELDS})
    with runs.failing(run_id):
        if cached is None:
            progress(f"stage 1 {key}: pretraining {config.backbone} for {config.pretrain_epochs} epochs")
            context = replace(record.context(cpus_per_worker), run_id=run_id, stages="stage1")
            torch_trainer(config, context, key, STAGE1_MAX_FAILURES).fit()
            cached = load_stage1(record.stage1_dir, key)
        n_params = count_parameters(config.backbone, record.num_classes, "none")["total"]
        runs.finish(run_id, {**{k: cached.metrics[k] for k in FINAL_KEYS if k != "n_params"}, "n_params": n_params},
                    step=0)
    return cached.metrics
