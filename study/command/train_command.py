"""`imlgcn train` on the driver: check everything, then run the three stages on Ray Train workers.

Everything that can be checked on the driver (config, data folder, annotation files, images, word
vectors, weights, Ray's GPUs) is checked before the MLflow run exists, so bad input costs seconds and
leaves nothing half-written.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Callable

from study.driver.mlflow_store import resolve_tracking_uri
from study.driver.preflight import prepare_data, preflight, redact
from trainables.config import TrialConfig
from trainables.size_measures import COUNT_KEYS
from trainables.trial.mlflow_runs import RunLog, final_metrics, final_tags, store
from trainables.trial.run_context import RunContext

Progress = Callable[[str], None]


def run_train(config: TrialConfig, tracking_uri: str | None, address: str | None, storage: str,
              experiment: str, progress: Progress) -> dict:
    """Run pretrain -> embed -> train as one Tune trial (in its own process on one worker, on Ray Train
    workers when data parallel); log to MLflow; return the final metrics."""
    from study.driver.ray_session import check_gpus, needs_state_api, node_cpus, start_ray, stop_ray

    began = time.time()
    uri = resolve_tracking_uri(tracking_uri)
    preflight(uri, address, storage)
    config, classes, index = prepare_data(config, progress, Path(storage).absolute() / "stage1")
    progress(start_ray(address, state_api=needs_state_api([config])))
    try:
        check_gpus(config.use_gpu, config.num_workers)
        root = Path(storage).absolute()
        runs = store(uri)
        context = RunContext(tracking_uri=uri, experiment_id=runs.experiment_id(experiment),
                             stage1_dir=str(root / "stage1"), train_storage=str(root),
                             models_dir=str(root / "models"), cpus_per_worker=config.worker_cpus(node_cpus()),
                             split_index=index)
        return _tracked_fit(config, classes, context, runs, experiment, began, progress)
    finally:
        stop_ray()


def _tracked_fit(config: TrialConfig, classes: tuple[str, ...], context: RunContext, runs: RunLog,
                 experiment: str, began: float, progress: Progress) -> dict:
    from study.driver.trainings import run_trainings
    from trainables.models.saved_model import self_contained
    from trainables.trial.trainable import trains_in_trial

    run_id = runs.create(context.experiment_id, f"{config.embedding}-{config.backbone}", {"stage": "train"},
                         config.to_dict())
    progress(f"MLflow run {run_id} in experiment {experiment!r} at {redact(context.tracking_uri)}")
    context = context.for_run(run_id, run_id)
    with runs.failing(run_id):
        gpu = " + 1 GPU" if config.use_gpu else ""
        progress(f"training in one Tune trial's process on {context.cpus_per_worker} CPU{gpu}" if trains_in_trial(config)
                 else f"training on {config.num_workers} Ray Train workers x {context.cpus_per_worker} CPU{gpu}")
        metrics = run_trainings({run_id: (config, context)}, context.train_storage, f"train-{run_id}", 1)[run_id]
        final = {**final_metrics(metrics), "direct_mAP": float(metrics["direct_mAP"]),
                 "wall_time_s": round(time.time() - began, 1)}
        with tempfile.TemporaryDirectory() as folder:  # a head-only model gets its backbone in the artifact
            runs.log_artifacts(run_id, self_contained(context.model_dir, Path(folder) / "model"), "model")
        runs.finish(run_id, final, step=config.epochs, tags=final_tags(metrics))
    progress(f"model saved to {context.model_dir} and logged as runs:/{run_id}/model "
             f"(try `imlgcn predict --model runs:/{run_id}/model IMAGE`)")
    return {**final, **{key: int(final[key]) for key in COUNT_KEYS},
            **final_tags(metrics), "num_classes": len(classes), "run_id": run_id,
            "model": context.model_dir}
