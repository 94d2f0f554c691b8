"""Everything that runs under Ray, in one place: the Tune trial functions, the Ray Train worker loop, the
one helper that builds a TorchTrainer, and the Runtime a stage gets inside Ray (with the checkpoint it
restarts from).

`imlgcn train`, a study's references and every study or comparison trial start here; the stages
themselves (`stages.run_stages`) know nothing of Ray. The TrialConfig crosses into Ray once: a trial
builds it from Tune's flat config (one conversion, one validation) and hands the object on.

Where a trial trains. One-worker training (num_workers=1, the default `train_in_trial`) runs in the Tune
trial's own process: it holds the CPUs (and GPU) it trains on, reports every epoch to Tune with its
checkpoint, and a trial whose process dies is retried by Tune from its last checkpoint. Nothing else
starts: a TorchTrainer would start a controller, a placement group and a worker actor (7-10 s here)
around the same single process. Data-parallel training (num_workers > 1) runs on Ray Train worker actors;
such a trial only waits for them, so it asks for no CPU at all, only memory: a trial holding even 0.01 CPU
would fragment the node it lands on (two trials on a cluster of two 1-CPU nodes each take 0.01 of one
node, and neither node has the whole CPU a worker needs: a deadlock, seen on such a cluster).
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
from dataclasses import replace
from typing import Any, Callable

from trainables.config import HEAD, SEARCH, TrialConfig, keys_of
from trainables.trial.mlflow_runs import RunLog, final_metrics, final_tags, search_tags, store
from trainables.trial.run_context import RunContext
from trainables.training.runtime import Runtime

WAITING_TRIAL_MEMORY = 256 * 2**20  # bytes a data-parallel trial's process needs while its workers train
# A restarted trial needs its last checkpoint; a resumed study restores each trial from the checkpoint its
# Tune experiment state names, and that state is saved every second (study/levels/tuner.py) while Tune deletes all
# but the last CHECKPOINTS_KEPT as new ones come. With one kept and epochs shorter than a second, a driver
# killed between a deletion and the next save left a trial whose named checkpoint was gone (its resume
# failed: seen in tests/test_cluster.py). Two kept, and a trial's checkpointed reports at least
# CHECKPOINT_GAP_S apart (every epoch still reports its metrics), keep the named one on disk.
CHECKPOINTS_KEPT = 2
CHECKPOINT_GAP_S = 2.0
TRAIN_MAX_FAILURES = 2  # retries from the last checkpoint before `imlgcn train` or a reference fails


def trains_in_trial(config: TrialConfig) -> bool:
    """One-worker training runs in the Tune trial's process (train_in_trial), data-parallel on workers."""
    return config.num_workers == 1 and config.train_in_trial


def trial_resources(config: TrialConfig, context: RunContext) -> dict[str, float]:
    """Ray resources of the trial function itself (see the module docstring)."""
    if trains_in_trial(config):
        return {"cpu": float(context.cpus_per_worker), "gpu": 1.0 if config.use_gpu else 0.0}
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

    def log_epoch(report: dict) -> None:
        run_id = context.run_id if is_trial_result(report) else (context.pretrain_run_id or context.run_id)
        if run_id:
            runs.log_epoch(run_id, report)

    runtime = worker_runtime(on_report=log_epoch, started_at=context.started_at or entered,
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


def imlgcn_trial(config: dict[str, Any], context: RunContext, constants: dict[str, Any]) -> None:
    """The Tune function trainable of a study's fine-tuning level: one trial = stage 3 on top of the shared
    stage 1, logged to its own MLflow run (one per trial id, reopened on a retry). `config` holds the
    searched values, `constants` every other key."""
    began = time.time()
    values, search = search_tags({**constants, **config})
    final = _run_trial(TrialConfig.from_dict(values), context, {"level": context.level, **search} if context.level
                       else search or None, began=began)
    from ray import tune

    tune.report(final)  # the last result: what Optuna (and the schedulers) see


# What a screened trial's MLflow run logs as params: the keys a head or a search can change (and whatever its
# space searched). A sweep screens
# tens of thousands: each of its other 35 keys would be one more row to write and to read back in every
# report (reading a run costs about its number of params, tags and metrics); they are the study's base
# config, logged once on its parent run.
SCREENED_PARAMS = tuple(dict.fromkeys((*keys_of(HEAD), *keys_of(SEARCH), "finetune_backbone")))


def screen_trial(config: dict[str, Any], context: RunContext, constants: dict[str, Any]) -> None:
    """The Tune function trainable of a study's screening level: the head alone on the cached stage-1
    features (`head.screen`), everything shared loaded once per process, one MLflow write. `config` holds
    the searched values, `constants` every other key."""
    import ray
    import torch
    from ray import tune

    from trainables.stages.baseline import baseline_config, baseline_key, load_baseline, save_baseline
    from trainables.stages.gcn_inputs import stored_inputs
    from trainables.stages.head import screen
    from trainables.stages.stage_cache import stage1_key

    started = time.time()
    values, search = search_tags({**constants, **config})
    trial_config = TrialConfig.from_dict(values)
    torch.set_num_threads(context.cpus_per_worker)
    stage1 = stage1_key(trial_config)
    inputs = stored_inputs(context.stage1_dir, stage1, context.split_index)
    key = context.reference(stage1) or baseline_key(trial_config)
    direct = load_baseline(context.stage1_dir, key)
    if direct is None:  # a head-only baseline trains in a second, as every screened head
        direct = screen(baseline_config(trial_config), inputs)
        save_baseline(context.stage1_dir, key, direct)
    metrics = screen(trial_config, inputs)
    final = {**final_metrics(metrics), "direct_mAP": float(direct["mAP"]), "wall_time_s": round(time.time() - started, 3)}
    trial_id = tune.get_context().get_trial_id()
    tags = {"level": "screen", "tune_run": context.tune_run, "ray_node_id": ray.get_runtime_context().get_node_id(),
            **final_tags(metrics), **search}
    params = {k: v for k, v in trial_config.to_dict().items() if k in SCREENED_PARAMS or k in config}
    run_id = store(context.tracking_uri).record_trial(context.screened_runs_dir(), trial_id, context.experiment_id,
                                                     context.parent_run_id, params, final, tags, int(started * 1000))
    # Tune keeps every trial's last result, with running statistics of each number in it, in memory and in
    # its state: only what the searcher and the console read (the rest is in MLflow)
    tune.report({"mAP": final["mAP"], context.size_metric: final[context.size_metric], "epoch": trial_config.epochs,
                 "mlflow_run_id": run_id})


def compare_trial(config: dict[str, Any], context: RunContext, base: dict[str, Any],
                  arms: dict[str, dict[str, Any]]) -> None:
    """The Tune function trainable of `imlgcn compare`: {"arm": name, "seed": s} -> the base config with
    the arm's overrides and that training seed, trained and logged like a study trial (tags arm, seed)."""
    from ray import tune

    began = time.time()
    trial_config = TrialConfig.from_dict({**base, **arms[config["arm"]], "seed": config["seed"]})
    tags = {"stage": "compare", "arm": config["arm"], "seed": str(config["seed"])}
    tune.report(_run_trial(trial_config, context, tags, f"{config['arm']}-seed{config['seed']}", began))


def train_trial(config: dict[str, Any], trainings: dict[str, tuple[TrialConfig, RunContext]]) -> None:
    """The Tune function trainable of `imlgcn train` and of the references (stage 1 and the same-budget
    baselines) of a study or a comparison: training `config["training"]`, a TrialConfig with its RunContext
    made on the driver, trained as any trial; its final metrics are the trial's last result."""
    from ray import tune

    began = time.time()
    trial_config, context = trainings[config["training"]]
    metrics = run_trial(trial_config, replace(context, started_at=began), f"train-{config['training']}",
                        max_failures=TRAIN_MAX_FAILURES, to_tune=lambda report: True)
    tune.report({k: v for k, v in metrics.items() if not isinstance(v, dict)})


def run_trial(config: TrialConfig, context: RunContext, name: str, max_failures: int = 1,
              callbacks: tuple = (), to_tune: Callable[[dict], bool] | None = None) -> dict:
    """Train as `context` says (stages, MLflow runs, model folder) in this Tune trial's process when it
    trains on one worker, else on Ray Train workers (a TorchTrainer named `name`, its per-epoch reports
    passed to Tune by `callbacks`); returns the final metrics. `to_tune` chooses the reports that go to
    Tune (with their checkpoints) from this process: by default stage 3's, which a study's searcher reads."""
    runs = store(context.tracking_uri)
    if trains_in_trial(config):
        return _train_in_trial(config, context, runs, to_tune or is_trial_result)
    return torch_trainer(config, context, name, max_failures, callbacks).fit().return_value


def _run_trial(trial_config: TrialConfig, study: RunContext, tags: dict[str, str] | None = None,
               run_name: str | None = None, began: float | None = None) -> dict:
    """A study's or a comparison's trial: trained by `run_trial`, logged to its MLflow run (one per trial
    id, reopened on a retry); returns its last result (final metrics, direct_mAP, per-class APs)."""
    import ray
    from ray import tune

    began = began or time.time()
    trial_id = tune.get_context().get_trial_id()
    runs = store(study.tracking_uri)
    run_id = runs.trial_run(study.runs_dir, trial_id, study.experiment_id, study.parent_run_id,
                            trial_config.to_dict(), ray.get_runtime_context().get_node_id(), tags, run_name)
    run = replace(study.for_run(run_id, trial_id, trial_config.keep_checkpoints), started_at=began)
    with runs.failing(run_id):
        metrics = run_trial(trial_config, run, f"train-{trial_id}", callbacks=(_stage3_reports(),))
        final = {**final_metrics(metrics), "direct_mAP": float(metrics["direct_mAP"]),
                 "wall_time_s": round(time.time() - began, 2)}
        runs.finish(run_id, final, step=trial_config.epochs, tags=final_tags(metrics))
    return {**final, "epoch": trial_config.epochs, "class_AP": list(metrics.get("class_AP", [])), "mlflow_run_id": run_id}


def _train_in_trial(config: TrialConfig, run: RunContext, runs: RunLog, to_tune: Callable[[dict], bool]) -> dict:
    """The stages in this Tune trial's process, on the CPUs (and GPU) the trial holds: every epoch goes
    to MLflow and, with its checkpoint, to Tune, which retries a failed trial from the last one."""
    import torch
    from ray import tune

    for name in ("ray.train", "ray.tune"):  # no INFO line per checkpoint: the epoch lines are the progress
        logging.getLogger(name).setLevel(logging.WARNING)
    torch.set_num_threads(run.cpus_per_worker)
    device = torch.device("cuda" if config.use_gpu else "cpu")  # Ray shows the trial its own GPU as cuda:0

    def log_epoch(report: dict) -> None:
        run_id = run.run_id if is_trial_result(report) else (run.pretrain_run_id or run.run_id)
        if run_id:
            runs.log_epoch(run_id, report)

    runtime = tune_runtime(on_report=log_epoch, device=device, started_at=run.started_at, to_tune=to_tune,
                           staging_dir=run.staging_dir(f"trial-{tune.get_context().get_trial_id()}"))
    _stderr(f"[trial] training in its own Tune trial process on node {_node_ip()}, {torch.get_num_threads()} "
            f"torch thread(s), device {device}")
    return _run_stages(config, run, runtime, _stderr, runs)


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
