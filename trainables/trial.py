"""The Ray Tune function trainable: one trial of a study = stage 3 on top of the shared stage 1.

A trial that fine-tunes the backbone (or uses several workers or a GPU) launches a `TorchTrainer`
named `train-<trial_id>` under the study's storage, so a retried or restored trial resumes that Train
run from its last checkpoint. The GCN-only fast mode (`finetune_backbone=false`) trains a few
thousand parameters on cached features: it runs inside the trial process and skips the ~20 s a
TorchTrainer costs to start on a small machine.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from typing import Any

from trainables.config import TrialConfig
from trainables.runtime import Runtime
from trainables.tracking import EpochLogger, TrialRuns

FINAL_KEYS = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "n_params")


def runs_in_process(config: TrialConfig) -> bool:
    """True for the fast mode on one CPU worker: no TorchTrainer needed."""
    return not config.finetune_backbone and config.num_workers == 1 and not config.use_gpu


def model_dir(config: TrialConfig, study: dict[str, Any], trial_id: str) -> str | None:
    """Where the trial saves its final model: <study>/models/<trial_id>, unless keep_checkpoints=none."""
    return None if config.keep_checkpoints == "none" else os.path.join(study["models_dir"], trial_id)


def _tune_runtime(logger: EpochLogger) -> Runtime:
    from ray import tune

    restored = tune.get_checkpoint()
    checkpoint_dir = None
    if restored is not None:
        checkpoint_dir = tempfile.mkdtemp(prefix="imlgcn-trial-")
        restored.to_directory(checkpoint_dir)

    def report(metrics: dict, folder: str | None) -> None:
        logger.log(metrics)
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)

    return Runtime(report=report, checkpoint_dir=checkpoint_dir)


def _train_in_workers(config: TrialConfig, study: dict[str, Any], trial_id: str, run_id: str) -> dict:
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer
    from ray.tune.integration.ray_train import TuneReportCallback

    from trainables.train_loop import train_loop_per_worker

    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"trial": config.to_dict(), "cache_dir": study["cache_dir"],
                           "tracking_uri": study["tracking_uri"], "run_id": run_id,
                           "model_dir": model_dir(config, study, trial_id)},
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=config.use_gpu,
                                     resources_per_worker={"CPU": study["cpus_per_worker"]}),
        run_config=RunConfig(name=f"train-{trial_id}", storage_path=study["train_storage"],
                             callbacks=[TuneReportCallback()], failure_config=FailureConfig(max_failures=1),
                             logging_config=LoggingConfig(log_level="WARNING"),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
    )
    return trainer.fit().metrics


def imlgcn_trial(config: dict[str, Any], study: dict[str, Any]) -> None:
    """Train one trial's config; log it to its own MLflow run (one per trial id, reused on retry)."""
    import ray
    from ray import tune

    from trainables.train_loop import run_stages

    began = time.time()
    for name in ("ray.train", "ray.tune"):  # the driver prints one line per trial instead
        logging.getLogger(name).setLevel(logging.WARNING)
    trial_config = TrialConfig.from_dict(config)
    trial_id = tune.get_context().get_trial_id()
    runs = TrialRuns(study["tracking_uri"], study["experiment_id"], study["parent_run_id"], study["runs_dir"])
    run_id = runs.start(trial_id, trial_config.to_dict(), ray.get_runtime_context().get_node_id())
    try:
        if runs_in_process(trial_config):
            threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
            import torch

            torch.set_num_threads(max(1, threads))
            runtime = _tune_runtime(EpochLogger(study["tracking_uri"], run_id))
            metrics = run_stages(trial_config, study["cache_dir"], runtime, lambda text: None,
                                 model_dir=model_dir(trial_config, study, trial_id))
        else:
            metrics = _train_in_workers(trial_config, study, trial_id, run_id)
        final = {k: float(metrics[k]) for k in FINAL_KEYS}
        final["wall_time_s"] = round(time.time() - began, 2)
        runs.finish(run_id, final, step=trial_config.epochs)
    except Exception:  # a stop from Tune (SystemExit) is not a failure: the driver closes that run
        runs.fail(run_id)
        raise
    tune.report({**final, "epoch": trial_config.epochs})  # the last result: what Optuna (and ASHA) see
