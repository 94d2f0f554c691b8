"""The Tune entry points: the trial functions of a study's two levels, of `imlgcn compare` and of
`imlgcn train` (with a study's references), and the Ray resources a trial asks for. What they train with
under Ray (the Ray Train worker loop, the TorchTrainer, the Runtime a stage gets inside Ray, with the
checkpoint it restarts from) is in trainables.trial.ray_runtime. A Tune state records these functions by
this module's name: they stay here.

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

import time
from dataclasses import replace
from typing import Any, Callable

from trainables.config import HEAD, SEARCH, TrialConfig, keys_of
from trainables.trial.mlflow_runs import final_metrics, final_tags, search_tags, store
from trainables.trial.ray_runtime import is_trial_result, stage3_reports, torch_trainer, train_in_trial_process
from trainables.trial.run_context import RunContext

WAITING_TRIAL_MEMORY = 256 * 2**20  # bytes a data-parallel trial's process needs while its workers train
TRAIN_MAX_FAILURES = 2  # retries from the last checkpoint before `imlgcn train` or a reference fails


def trains_in_trial(config: TrialConfig) -> bool:
    """One-worker training runs in the Tune trial's process (train_in_trial), data-parallel on workers."""
    return config.num_workers == 1 and config.train_in_trial


def trial_resources(config: TrialConfig, context: RunContext) -> dict[str, float]:
    """Ray resources of the trial function itself (see the module docstring)."""
    if trains_in_trial(config):
        return {"cpu": float(context.cpus_per_worker), "gpu": 1.0 if config.use_gpu else 0.0}
    return {"cpu": 0, "memory": WAITING_TRIAL_MEMORY}


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

    from trainables.stages.gcn_inputs import stored_inputs
    from trainables.stages.head import screen
    from trainables.stages.stage_cache import stage1_key

    started = time.time()
    values, search = search_tags({**constants, **config})
    trial_config = TrialConfig.from_dict(values)
    torch.set_num_threads(context.cpus_per_worker)
    stage1 = stage1_key(trial_config)
    inputs = stored_inputs(context.stage1_dir, stage1, context.split_index)
    direct = _screened_baseline(trial_config, context, stage1, inputs)
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


def _screened_baseline(trial_config: TrialConfig, context: RunContext, stage1: str, inputs) -> dict:
    """The metrics of the same-budget baseline a screened trial is compared with (the study's reference
    for its stage-1 key, else its own baseline key): stored in the stage-1 folder, else screened now and
    stored there."""
    from trainables.stages.baseline import baseline_config, baseline_key, load_baseline, save_baseline
    from trainables.stages.head import screen

    key = context.reference(stage1) or baseline_key(trial_config)
    direct = load_baseline(context.stage1_dir, key)
    if direct is None:  # a head-only baseline trains in a second, as every screened head
        direct = screen(baseline_config(trial_config), inputs)
        save_baseline(context.stage1_dir, key, direct)
    return direct


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
        return train_in_trial_process(config, context, runs, to_tune or is_trial_result)
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
        metrics = run_trial(trial_config, run, f"train-{trial_id}", callbacks=(stage3_reports(),))
        final = {**final_metrics(metrics), "direct_mAP": float(metrics["direct_mAP"]),
                 "wall_time_s": round(time.time() - began, 2)}
        runs.finish(run_id, final, step=trial_config.epochs, tags=final_tags(metrics))
    return {**final, "epoch": trial_config.epochs, "class_AP": list(metrics.get("class_AP", [])), "mlflow_run_id": run_id}

