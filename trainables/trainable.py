"""Everything that runs under Ray, in one place: the Tune trial function, the Ray Train worker loop,
the one helper that builds a TorchTrainer, and the Runtime a stage gets inside Ray (with the
checkpoint it restarts from).

`imlgcn train`, a study's stage-1 pretraining and every study trial start here; the stages themselves
(`stages.run_stages`) know nothing of Ray. The TrialConfig and the RunContext cross into Ray as flat
dicts and are rebuilt once on the other side.

Resources. A trial that fine-tunes only waits for its Ray Train workers, which hold whole CPUs (or
GPUs) in placement groups that Train V2 creates outside Tune's accounting. If such a trial held any
CPU itself, even 0.01, it would fragment the node it lands on: two trials on a cluster of two 1-CPU
nodes each take 0.01 of one node, and neither node has the whole CPU a worker needs (a deadlock, seen
on such a cluster). So a waiting trial asks for no CPU at all, only memory; a GCN-only trial that
trains in its own process asks for the CPUs it uses.
"""

from __future__ import annotations

import functools
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from typing import Any, Callable

from trainables.config import TrialConfig
from trainables.mlflow_runs import RunLog, final_metrics
from trainables.run_context import RunContext
from trainables.runtime import Runtime

WAITING_TRIAL_MEMORY = 256 * 2**20  # bytes a fine-tuning trial's process needs while its workers train
CHECKPOINTS_KEPT = 1  # per-epoch Train checkpoints: the last one is all a restart needs


def runs_in_process(config: TrialConfig) -> bool:
    """True for the GCN-only fast mode on one CPU worker: it trains in the trial process, no TorchTrainer."""
    return not config.finetune_backbone and config.num_workers == 1 and not config.use_gpu


def trial_resources(config: TrialConfig, context: RunContext) -> dict[str, float]:
    """Ray resources of the trial function itself (see the module docstring for why 0 CPU)."""
    if runs_in_process(config):
        return {"cpu": float(context.cpus_per_worker)}
    return {"cpu": 0, "memory": WAITING_TRIAL_MEMORY}


def torch_trainer(config: TrialConfig, context: RunContext, name: str, max_failures: int,
                  callbacks: tuple = ()):
    """The TorchTrainer of one training: `config.num_workers` workers of `context.cpus_per_worker` CPUs
    (and a GPU each with use_gpu), checkpoints under context.train_storage/name, so a run started again
    under the same name resumes from its last checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"trial": config.to_dict(), "context": context.to_dict()},
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=config.use_gpu,
                                     resources_per_worker={"CPU": context.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=context.train_storage, callbacks=list(callbacks),
                             failure_config=FailureConfig(max_failures=max_failures),
                             logging_config=LoggingConfig(log_level="WARNING"),
                             checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT)),
    )


def train_loop_per_worker(loop_config: dict[str, Any]) -> dict:
    """TorchTrainer entry: {"trial": flat TrialConfig, "context": flat RunContext}. Returns the run's final
    metrics (rank 0's is the Result's `return_value`: Train V2's `Result.metrics` holds only the last report
    that came with a checkpoint, which misses a run whose last report has none, e.g. epochs=0)."""
    import numpy as np
    import torch

    entered = time.time()
    config = TrialConfig(**loop_config["trial"])
    context = RunContext.from_dict(loop_config["context"])
    logging.getLogger().setLevel(logging.WARNING)  # our epoch lines are the progress, not Train's INFO logs
    torch.set_num_threads(context.cpus_per_worker)
    runs = RunLog(context.tracking_uri)

    def log_epoch(report: dict) -> None:
        run_id = context.run_id if is_trial_result(report) else (context.pretrain_run_id or context.run_id)
        if run_id:
            runs.log_epoch(run_id, report)

    runtime = worker_runtime(on_report=log_epoch)
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if runtime.is_main else (lambda text: None)
    np.random.seed(config.seed)
    log(f"[workers] {runtime.world_size} Ray Train worker(s), rank 0 on node {_node_ip()}, "
        f"{torch.get_num_threads()} torch thread(s), device {runtime.device}")
    from trainables.stages import run_stages

    if context.started_at:  # TorchTrainer, placement group, worker processes and their imports
        runtime.timings["startup"] = entered - context.started_at
    runtime.timings["worker_setup"] = time.time() - entered  # torch, MLflow, timm and our modules imported
    try:
        return run_stages(config, context.stage1_dir, runtime, log, context.stages, context.model_dir or None,
                          context.split_index, context.baseline_key)
    finally:
        _drop_restored(runtime)
        if runtime.is_main and context.run_id:  # where the run's time went, as MLflow metrics phase_*_s
            runs.log_metrics(context.run_id, {f"phase_{k}_s": v for k, v in runtime.timings.items()}, step=0)


def imlgcn_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    """The Tune function trainable of a study's fine-tuning level: one trial = stage 3 on top of the shared
    stage 1, logged to its own MLflow run (one per trial id, reopened on a retry)."""
    study = RunContext.from_dict(context)
    final = _run_trial(TrialConfig.from_dict(config), study, {"level": study.level} if study.level else None)
    from ray import tune

    tune.report(final)  # the last result: what Optuna (and the schedulers) see


def screen_trial(config: dict[str, Any], context: dict[str, Any]) -> None:
    """The Tune function trainable of a study's screening level: the head alone on the cached stage-1
    features (see trainables.screening), everything shared loaded once per process, one MLflow write."""
    import ray
    import torch
    from ray import tune

    from trainables.baseline import baseline_config, baseline_key, load_baseline, save_baseline
    from trainables.screening import screen, screening_data
    from trainables.stage_cache import stage1_key

    started = time.time()
    trial_config = TrialConfig.from_dict(config)
    study = RunContext.from_dict(context)
    torch.set_num_threads(study.cpus_per_worker)
    data = screening_data(study.stage1_dir, stage1_key(trial_config), study.split_index)
    key = study.baseline_key or baseline_key(trial_config)
    direct = load_baseline(study.stage1_dir, key)
    if direct is None:  # a head-only baseline trains in a second, as every screened head
        direct = screen(baseline_config(trial_config), data)
        save_baseline(study.stage1_dir, key, direct)
    metrics = screen(trial_config, data)
    final = {**final_metrics(metrics), "direct_mAP": float(direct["mAP"]), "wall_time_s": round(time.time() - started, 3)}
    trial_id = tune.get_context().get_trial_id()
    tags = {"level": "screen", "tune_run": study.tune_run, "ray_node_id": ray.get_runtime_context().get_node_id()}
    run_id = _run_log(study.tracking_uri).record_trial(study.runs_dir, trial_id, study.experiment_id,
                                                       study.parent_run_id, trial_config.to_dict(), final, tags,
                                                       int(started * 1000))
    tune.report({**final, "epoch": trial_config.epochs, "mlflow_run_id": run_id})


@functools.lru_cache(maxsize=4)
def _run_log(tracking_uri: str) -> RunLog:
    """One MLflow client per store and process (a screening actor records hundreds of trials)."""
    return RunLog(tracking_uri)


def compare_trial(config: dict[str, Any], context: dict[str, Any], base: dict[str, Any],
                  arms: dict[str, dict[str, Any]]) -> None:
    """The Tune function trainable of `imlgcn compare`: {"arm": name, "seed": s} -> the base config with
    the arm's overrides and that training seed, trained and logged like a study trial (tags arm, seed)."""
    from ray import tune

    trial_config = TrialConfig.from_dict({**base, **arms[config["arm"]], "seed": config["seed"]})
    tags = {"stage": "compare", "arm": config["arm"], "seed": str(config["seed"])}
    tune.report(_run_trial(trial_config, RunContext.from_dict(context), tags, f"{config['arm']}-seed{config['seed']}"))


def _run_trial(trial_config: TrialConfig, study: RunContext, tags: dict[str, str] | None = None,
               run_name: str | None = None) -> dict:
    """Train one trial in this Tune trial process (head only, on cached features) or on Ray Train workers,
    log it to its MLflow run, and return its last result (final metrics, direct_mAP, per-class APs)."""
    import ray
    from ray import tune

    began = time.time()
    for name in ("ray.train", "ray.tune"):  # the driver prints one line per trial instead
        logging.getLogger(name).setLevel(logging.WARNING)
    trial_id = tune.get_context().get_trial_id()
    runs = RunLog(study.tracking_uri)
    run_id = runs.trial_run(study.runs_dir, trial_id, study.experiment_id, study.parent_run_id,
                            trial_config.to_dict(), ray.get_runtime_context().get_node_id(), tags, run_name)
    run = study.for_run(run_id, trial_id, trial_config.keep_checkpoints)
    with runs.failing(run_id):
        if runs_in_process(trial_config):
            import torch

            from trainables.stages import run_stages

            torch.set_num_threads(run.cpus_per_worker)
            runtime = tune_runtime(on_report=lambda report: runs.log_epoch(run_id, report))
            try:
                metrics = run_stages(trial_config, run.stage1_dir, runtime, lambda text: None,
                                     model_dir=run.model_dir or None, split_index=run.split_index,
                                     reference=run.baseline_key)
            finally:
                _drop_restored(runtime)
        else:
            trainer = torch_trainer(trial_config, replace(run, started_at=time.time()), f"train-{trial_id}",
                                    max_failures=1, callbacks=(_stage3_reports(),))
            metrics = trainer.fit().return_value
        final = {**final_metrics(metrics), "direct_mAP": float(metrics["direct_mAP"]),
                 "wall_time_s": round(time.time() - began, 2)}
        runs.finish(run_id, final, step=trial_config.epochs)
    return {**final, "epoch": trial_config.epochs, "class_AP": list(metrics.get("class_AP", [])), "mlflow_run_id": run_id}


def is_trial_result(report: dict) -> bool:
    """Whether a per-epoch report goes to Tune: stage-3 epochs only. A trial whose stage-1 key differs
    from the study's pretrains its own backbone first; those epochs (logged to MLflow by the worker)
    carry no mAP / n_params, which Tune's searcher requires of every result it is given."""
    return "pretrain_epoch" not in report


def _drop_restored(runtime: Runtime) -> None:
    """Delete the local copy of the restored checkpoint once the run is over (read by then)."""
    if runtime.checkpoint_dir:
        shutil.rmtree(runtime.checkpoint_dir, ignore_errors=True)


def _stage3_reports():
    """Train's TuneReportCallback for the reports that are trial results (see is_trial_result)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    class Stage3Reports(TuneReportCallback):
        def after_report(self, run_context, metrics, checkpoint) -> None:
            if is_trial_result(metrics[0]):
                super().after_report(run_context, metrics, checkpoint)

    return Stage3Reports()


def _node_ip() -> str:
    """The address of the Ray node this process runs on, as the cluster knows it (with several nodes on
    one machine, `ray.util.get_node_ip_address()` can name another of them)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    return next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node_id), "unknown")


def _restored_dir(checkpoint, prefix: str) -> str | None:
    """The restored checkpoint copied to a local folder (None when starting fresh)."""
    if checkpoint is None:
        return None
    folder = tempfile.mkdtemp(prefix=prefix)
    checkpoint.to_directory(folder)
    return folder


def worker_runtime(on_report: Callable[[dict], None] | None = None) -> Runtime:
    """The Runtime of this Ray Train worker: rank, device, DDP wrapping, reports and restored checkpoint."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()

    def report(metrics: dict, folder: str | None) -> None:
        if on_report is not None and context.get_world_rank() == 0:
            on_report(metrics)
        # the upload runs in the background and deletes the folder once done: training goes on meanwhile
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if folder else None,
                         checkpoint_upload_mode=ray.train.CheckpointUploadMode.ASYNC)

    return Runtime(rank=context.get_world_rank(), world_size=context.get_world_size(),
                   device=ray.train.torch.get_device(), report=report,
                   checkpoint_dir=_restored_dir(ray.train.get_checkpoint(), "imlgcn-restore-"),
                   wrap_model=lambda m: ray.train.torch.prepare_model(m, move_to_device=False))


def tune_runtime(on_report: Callable[[dict], None]) -> Runtime:
    """The Runtime of a trial that trains in its own Tune process (one CPU rank): reports go to Tune."""
    from ray import tune

    def report(metrics: dict, folder: str | None) -> None:
        on_report(metrics)
        if is_trial_result(metrics):
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if folder else None)
        if folder:
            shutil.rmtree(folder, ignore_errors=True)

    return Runtime(report=report, checkpoint_dir=_restored_dir(tune.get_checkpoint(), "imlgcn-trial-"))
