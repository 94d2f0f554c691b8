"""Stage 1 of a study, run once per key on the driver's behalf before any trial starts.

The direct model it trains is the study's baseline: one MLflow run per key (tag stage=pretrain) with
its validation metrics and parameter count, drawn on the Pareto plot for reference.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from study.study_state import StudyState
from trainables.config import TrialConfig
from trainables.stage_cache import STAGE1_FIELDS, load_stage1, stage1_key

FINAL_KEYS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1")


def ensure_stage1(state: StudyState, config: TrialConfig, cpus: int, progress: Callable[[str], None]) -> dict:
    """Pretrain + embed unless the key is cached; make sure the study has its baseline run."""
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    from study.train_job import fit_in_workers
    from trainables.model import count_parameters

    key = stage1_key(config)
    client = MlflowClient(tracking_uri=state.tracking_uri)
    found = client.search_runs([state.experiment_id], f"tags.pretrain_key = '{key}' and attributes.status = 'FINISHED'")
    cached = load_stage1(Path(state.storage) / "stage1", key)
    if cached is not None and found:
        progress(f"stage 1 {key} already done (direct model mAP {cached.metrics['mAP']:.2f})")
        return cached.metrics
    tags = {"stage": "pretrain", "pretrain_key": key, "mlflow.parentRunId": state.parent_run_id}
    run_id = client.create_run(state.experiment_id, tags=tags, run_name=f"pretrain-{config.backbone}").info.run_id
    client.log_batch(run_id, params=[Param(k, str(getattr(config, k))) for k in STAGE1_FIELDS])
    try:
        if cached is None:
            progress(f"stage 1 {key}: pretraining {config.backbone} for {config.pretrain_epochs} epochs")
            fit_in_workers(config, state.tracking_uri, run_id, Path(state.storage), key, cpus, stages="stage1")
            cached = load_stage1(Path(state.storage) / "stage1", key)
        n_params = count_parameters(config.backbone, state.num_classes, "none")["total"]
        now = int(time.time() * 1000)
        values = {**{k: cached.metrics[k] for k in FINAL_KEYS}, "n_params": n_params}
        client.log_batch(run_id, metrics=[Metric(k, float(v), now, 0) for k, v in values.items()])
        client.set_terminated(run_id, "FINISHED")
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    return cached.metrics
