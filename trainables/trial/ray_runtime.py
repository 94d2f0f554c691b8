"""The Ray runtime a trial trains with: the Ray Train worker loop and the one helper that builds a
TorchTrainer (data-parallel training), training in the Tune trial's own process (one worker), and the
Runtime a stage gets inside Ray (with the checkpoint it restarts from). The Tune trial functions that use
them are in trainables.trial.trainable (see its docstring for where a trial trains).
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Callable

from trainables.config import TrialConfig
from trainables.trial.mlflow_runs import RunLog, store
from trainables.trial.run_context import RunContext
from trainables.training.runtime import Runtime

# A restarted trial needs its last checkpoint; a resumed study restores each trial from the checkpoint its
# Tune experiment state names, and that state is saved every second (study/levels/tuner.py) while Tune deletes all
# but the last CHECKPOINTS_KEPT as new ones come. With one kept and epochs shorter than a second, a driver
# killed between a deletion and the next save left a trial whose named checkpoint was gone (its resume
# failed: seen in tests/test_cluster.py). Two kept, and a trial's checkpointed reports at least
# CHECKPOINT_GAP_S apart (every epoch still reports its metrics), keep the named one on disk.
CHECKPOINTS_KEPT = 2
CHECKPOINT_GAP_S = 2.0


def torch_trainer(config: TrialConfig, context: RunContext, name: str, max_failures: int,
                  callbacks: tuple = ()):
    """The TorchTrainer of one training: `config.num_workers` workers of `context.cpus_per_worker` CPUs
    (and a GPU each with use_gpu), checkpoints under context.train_storage/name, so a run started again
    under the same name resumes from its last checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"trial": config, "context": context},
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=config.use_gpu,
                                     resources_per_worker={"CPU": context.cpus_per_worker}),
        run_config=RunConfig(name=name, storage_path=context.train_storage, callbacks=list(callbacks),
                             failure_config=FailureConfig(max_failures=max_failures),
                             logging_config=LoggingConfig(log_level="WARNING"),
                             checkpoint_config=CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT)),
    )


def train_loop_per_worker(loop_config: dict[str, Any]) -> dict:
    """TorchTrainer entry: {"trial": TrialConfig, "context": RunContext}. Returns the run's final metrics
    (rank 0's is the Result's `return_value`: Train V2's `Result.metrics` holds only the last report that
    came with a checkpoint, which misses a run whose last report has none, e.g. epochs=0)."""
    import ray.train
    import torch

    entered = time.time()
    config: TrialConfig = loop_config["trial"]
    context: RunContext = loop_config["context"]
    logging.getLogger().setLevel(logging.WARNING)  # our epoch lines are the progress, not Train's INFO logs
    torch.set_num_threads(context.cpus_per_worker)
    runs = store(context.tracking_uri)
    runtime = worker_runtime(on_report=_epoch_logger(context, runs), started_at=context.started_at or entered,
                             staging_dir=context.staging_dir(ray.train.get_context().get_experiment_name()))
    log = _stderr if runtime.is_main else (lambda text: None)
    log(f"[workers] {runtime.world_size} Ray Train worker(s), rank 0 on node {_node_ip()}, "
        f"{torch.get_num_threads()} torch thread(s), device {runtime.device}")
    runtime.timings["worker_setup"] = time.time() - entered  # torch, MLflow, timm and our modules imported
    return _run_stages(config, context, runtime, log, runs if runtime.is_main else None)


# Runs this process has started (1 = its first: it alone pays for importing torch, timm and MLflow and for
# opening the tracking store, about 5 s on 2 cores; Tune reuses a trial's process for the next trial).
_RUNS_IN_PROCESS = itertools.count(1)


def _run_stages(config: TrialConfig, context: RunContext, runtime: Runtime, log: Callable[[str], None],
                runs: RunLog | None) -> dict:
    """`stages.run_stages` with the context's folders; then the restored checkpoint's copy is deleted and,
    with `runs`, where the run's time went is logged as MLflow metrics phase_*_s, with runs_in_process."""
    import numpy as np

    from trainables.stages.stages import run_stages

    from trainables.stages.stage_cache import stage1_key

    np.random.seed(config.seed)
    runs_in_process = next(_RUNS_IN_PROCESS)
    try:
        return run_stages(config, context.stage1_dir, runtime, log, context.stages, context.model_dir or None,
                          context.split_index, context.reference(stage1_key(config)))
    finally:
        _drop_restored(runtime)
        if runs is not None and context.run_id:
            runs.log_metrics(context.run_id, {**{f"phase_{k}_s": v for k, v in runtime.timings.items()},
                                              "runs_in_process": runs_in_process}, step=0)


def train_in_trial_process(config: TrialConfig, run: RunContext, runs: RunLog,
                           to_tune: Callable[[dict], bool]) -> dict:
    """The stages in this Tune trial's process, on the CPUs (and GPU) the trial holds: every epoch goes
    to MLflow and, with its checkpoint, to Tune, which retries a failed trial from the last one."""
    import torch
    from ray import tune

    for name in ("ray.train", "ray.tune"):  # no INFO line per checkpoint: the epoch lines are the progress
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(run.cpus_per_worker)
    device = torch.device("cuda" if config.use_gpu else "cpu")  # Ray shows the trial its own GPU as cuda:0
    runtime = tune_runtime(on_report=_epoch_logger(run, runs), device=device, started_at=run.started_at,
                           to_tune=to_tune, staging_dir=run.staging_dir(f"trial-{tune.get_context().get_trial_id()}"))
    _stderr(f"[trial] training in its own Tune trial process on node {_node_ip()}, {torch.get_num_threads()} "
            f"torch thread(s), device {device}")
    return _run_stages(config, run, runtime, _stderr, runs)


def _epoch_logger(run: RunContext, runs: RunLog) -> Callable[[dict], None]:
    """The `on_report` of a run's Runtime: each per-epoch report to MLflow, stage 3's to the run's own
    MLflow run, a pretraining epoch to its pretraining run when it has one (else to its own)."""

    def log_epoch(report: dict) -> None:
        run_id = run.run_id if is_trial_result(report) else (run.pretrain_run_id or run.run_id)
        if run_id:
            runs.log_epoch(run_id, report)

    return log_epoch


def is_trial_result(report: dict) -> bool:
    """Whether a per-epoch report goes to Tune: stage-3 epochs only. A trial whose stage-1 key differs
    from the study's pretrains its own backbone first; those epochs (logged to MLflow) carry no mAP /
    n_params, which Tune's searcher requires of every result it is given."""
    return "pretrain_epoch" not in report


def _stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _drop_restored(runtime: Runtime) -> None:
    """Delete the local copy of the restored checkpoint once the run is over (read by then)."""
    if runtime.checkpoint_dir:
        shutil.rmtree(runtime.checkpoint_dir, ignore_errors=True)


def stage3_reports():
    """Train's TuneReportCallback for the reports that are trial results (see is_trial_result)."""
    from ray.tune.integration.ray_train import TuneReportCallback

    # defined here, not at module level: its base class comes from ray.tune, which this module imports only
    # when a trial runs (as every Ray import here)
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


def _restored_dir(checkpoint, staging: str | None) -> str | None:
    """The restored checkpoint copied to a local folder (None when starting fresh): inside the run's
    `staging` folder when it has one, so a process killed before `_drop_restored` leaves its copy where the
    retry and the driver clear it (see RunContext.staging_dir), else in the system's temp folder."""
    if checkpoint is None:
        return None
    folder = tempfile.mkdtemp(prefix="imlgcn-restored-", dir=staging)
    checkpoint.to_directory(folder)
    return folder


def _fresh_folder(folder: str) -> str:
    """`folder`, emptied of what an earlier attempt of the same run left (that attempt is over)."""
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder, exist_ok=True)
    return folder


def worker_runtime(on_report: Callable[[dict], None] | None = None, started_at: float | None = None,
                   staging_dir: str | None = None) -> Runtime:
    """The Runtime of this Ray Train worker: rank, device, DDP wrapping, reports and restored checkpoint;
    checkpoint folders are made under `staging_dir` (see RunContext.staging_dir)."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()

    def report(metrics: dict, folder: str | None) -> None:
        if on_report is not None and context.get_world_rank() == 0:
            on_report(metrics)
        # the upload runs in the background and deletes the folder once done: training goes on meanwhile
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder) if folder else None,
                         checkpoint_upload_mode=ray.train.CheckpointUploadMode.ASYNC)

    staging = _fresh_folder(f"{staging_dir}-rank{context.get_world_rank()}") if staging_dir else None
    return Runtime(rank=context.get_world_rank(), world_size=context.get_world_size(),
                   device=ray.train.torch.get_device(), report=report, staging_dir=staging,
                   checkpoint_dir=_restored_dir(ray.train.get_checkpoint(), staging),
                   wrap_model=lambda m: ray.train.torch.prepare_model(m, move_to_device=False),
                   started_at=started_at or time.time())


def tune_runtime(on_report: Callable[[dict], None], device=None, started_at: float | None = None,
                 to_tune: Callable[[dict], bool] = is_trial_result, staging_dir: str | None = None) -> Runtime:
    """The Runtime of a run that trains in its own Tune trial process (one rank): the reports `to_tune`
    chooses go to Tune with their checkpoints (at most one per CHECKPOINT_GAP_S), made under `staging_dir`
    (see RunContext.staging_dir)."""
    from ray import tune

    last_checkpoint = [-math.inf]  # time.monotonic() of this run's last checkpointed report

    def report(metrics: dict, folder: str | None) -> None:
        try:
            on_report(metrics)
            if to_tune(metrics):  # a trial the scheduler stops exits in here (SystemExit)
                attach = folder is not None and time.monotonic() - last_checkpoint[0] >= CHECKPOINT_GAP_S
                if attach:
                    last_checkpoint[0] = time.monotonic()
                tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(folder) if attach else None)
        finally:
            if folder:
                shutil.rmtree(folder, ignore_errors=True)

    extra = {"device": device} if device is not None else {}
    staging = _fresh_folder(staging_dir) if staging_dir else None
    return Runtime(report=report, checkpoint_dir=_restored_dir(tune.get_checkpoint(), staging),
                   started_at=started_at or time.time(), staging_dir=staging, **extra)
