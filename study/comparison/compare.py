"""`imlgcn compare`: a set of arms over several training seeds, on Ray, with paired differences.

Every arm is the base config plus its overrides (see `arms`), trained once per training seed; the data
seed stays fixed, so seeds change only the training. Stage 1 and the same-budget baseline are trained
once per seed first (shared by every arm of that seed); then each (arm, seed) is one Tune trial and one
MLflow run (tags stage=compare, arm, seed) under a parent run. The table (mean and sd per arm, paired
difference to the reference arm with a 95 % interval over seeds, per-class AP differences by class
frequency) is printed and logged on the parent run as compare.txt / compare.csv and as metrics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from study.comparison.arms import SHARED_KEYS, load_arms
from study.driver.console import verbose
from study.driver.mlflow_store import resolve_tracking_uri
from study.comparison.paired import compare_table, format_table, frequency_groups
from study.driver.preflight import check_ray_address, check_tracking_uri, check_writable, prepare_data
from study.driver.record import check_name
from study.levels.create import check_max_concurrent
from trainables.config import ConfigError, TrialConfig
from trainables.seeds import MAX_SEED, in_range
from trainables.trial.mlflow_runs import FINISHED, KILLED, RunLog, store
from trainables.trial.run_context import RunContext, clear_staging

Progress = Callable[[str], None]


def arm_configs(base: TrialConfig, arms: dict[str, dict[str, Any]], classes: int) -> dict[str, TrialConfig]:
    """Each arm's config, checked now (an unknown key or value, or a setting that differs between arms
    where they must run alike, is an error before anything starts)."""
    configs = {}
    for name, overrides in arms.items():
        try:
            config = TrialConfig.from_dict({**base.to_dict(), **overrides})
        except ConfigError as error:
            raise ConfigError(f"arm {name!r}: {error}") from None
        config.check_classes(classes)
        different = [k for k in SHARED_KEYS if getattr(config, k) != getattr(base, k)]
        if different:
            raise ConfigError(f"arm {name!r} sets {different[0]}: every arm must share {', '.join(SHARED_KEYS)}; "
                              "set it with --set for all arms")
        configs[name] = config
    return configs


def check_seeds(seeds: list[int]) -> None:
    """One or more distinct training seeds (a dry run checks them too)."""
    if not seeds or len(set(seeds)) != len(seeds) or not all(in_range(seed) for seed in seeds):
        raise ConfigError(f"--seeds {' '.join(map(str, seeds))}: give distinct training seeds in 0..{MAX_SEED}, "
                          "e.g. --seeds 0 1 2")


def taken_message(folder: Path) -> str:
    """A comparison's folder exists: the name is taken (a dry run says so too)."""
    return f"comparison {folder.name!r} already exists in {folder.parent}: choose another --name"


def run_compare(name: str, config: TrialConfig, arms_spec: str, seeds: list[int], storage: str,
                tracking_uri: str | None, address: str | None, max_concurrent: int, progress: Progress) -> dict:
    """Check, train stage 1 + baseline per seed, run every (arm, seed), then build and log the table."""
    from study.driver.ray_session import check_gpus, needs_state_api, node_cpus, start_ray, stop_ray, worker_slots

    arms = load_arms(arms_spec)
    check_seeds(seeds)
    check_max_concurrent(max_concurrent)
    folder = check_writable(storage) / check_name(name, "comparison")
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    check_ray_address(address)
    config, classes, index = prepare_data(config, progress, Path(storage).absolute() / "stage1")
    configs = arm_configs(config, arms, len(classes))
    from trainables.stages.gcn_inputs import check_word_vectors

    for arm, arm_config in configs.items():
        try:
            check_word_vectors(arm_config, classes)
        except ConfigError as error:
            raise ConfigError(f"arm {arm!r}: {error}") from None
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        folder.mkdir()
    except FileExistsError:
        raise ConfigError(taken_message(folder)) from None
    try:
        runs = store(uri)
        exp = runs.experiment_id(f"compare-{name}")
        parent = runs.create(exp, name, {"stage": "compare-set", "arms": arms_spec,
                                         "seeds": ",".join(map(str, seeds))}, config.to_dict())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    context = RunContext(tracking_uri=uri, experiment_id=exp, stage1_dir=str(Path(storage).absolute() / "stage1"),
                         train_storage=str(folder / "train"), models_dir=str(folder / "models"),
                         runs_dir=str(folder / "mlflow_runs"), parent_run_id=parent, split_index=index)
    progress(start_ray(address, worker_logs=verbose(), state_api=needs_state_api(configs.values())))
    status = KILLED
    try:
        check_gpus(config.use_gpu, config.num_workers)
        slots = worker_slots(config.cpus_per_worker or 1)
        at_once = max_concurrent or max(1, slots // config.num_workers)
        context = dataclasses.replace(context, cpus_per_worker=config.worker_cpus(node_cpus(), at_once))
        _references(config, list(configs.values()), seeds, context, at_once, progress)
        results = _arms(config, arms, seeds, context, at_once, folder, progress)
        table = _table(results, next(iter(arms)), config, seeds, arms_spec, runs, parent, configs)
        status = FINISHED
        return table
    finally:
        runs.close(parent, status)
        stop_ray()


def _references(base: TrialConfig, configs: list[TrialConfig], seeds: list[int], context: RunContext, at_once: int,
                progress: Progress) -> None:
    """Stage 1 and the base config's same-budget baseline for every seed and every stage-1 setting the arms
    use (one per backbone and resolution; skipped where cached), `at_once` at once, before any arm trains."""
    from study.levels.references import point_name
    from study.driver.trainings import run_trainings
    from trainables.stages.stage_cache import STAGE1_FIELDS, stage1_key

    points: dict[str, TrialConfig] = {}
    for seed in seeds:
        for config in configs:
            seeded = dataclasses.replace(base, **{**{k: getattr(config, k) for k in STAGE1_FIELDS}, "seed": seed})
            points.setdefault(stage1_key(seeded), seeded)
    several = len(points) > len(seeds)
    progress(f"stage 1 and the same-budget baseline for training seeds {', '.join(map(str, seeds))}"
             + (f" on {len(points) // len(seeds)} backbones / resolutions" if several else ""))
    reference = dataclasses.replace(context, stages="baseline")
    run_trainings({f"seed{c.seed}" + (f"-{point_name(c)}" if several else ""): (c, reference) for c in points.values()},
                  context.train_storage, "references", at_once)


def _arms(config: TrialConfig, arms: dict[str, dict], seeds: list[int], context: RunContext, at_once: int,
          folder: Path, progress: Progress) -> dict[str, dict[int, dict]]:
    """Every (arm, seed) as a Tune trial; returns results[arm][seed] = its last result."""
    from ray import tune

    from trainables.trial.ray_runtime import CHECKPOINTS_KEPT
    from trainables.trial.trainable import compare_trial, trains_in_trial, trial_resources

    progress(f"{len(arms)} arms x {len(seeds)} seeds = {len(arms) * len(seeds)} runs, up to {at_once} at once")
    fn = tune.with_parameters(compare_trial, context=context, base=config.to_dict(), arms=arms)
    tuner = tune.Tuner(
        tune.with_resources(fn, trial_resources(config, context)),
        param_space={"arm": tune.grid_search(list(arms)), "seed": tune.grid_search(seeds)},
        tune_config=tune.TuneConfig(max_concurrent_trials=at_once, reuse_actors=trains_in_trial(config),
                                    trial_dirname_creator=lambda trial: f"trial_{trial.trial_id}"),
        run_config=tune.RunConfig(name="tune", storage_path=str(folder), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=1),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT)))
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the table
        grid = tuner.fit()
    clear_staging(context.train_storage)
    failed = [f"{r.config['arm']} seed {r.config['seed']}" for r in grid if r.error]
    if failed:
        raise ConfigError(f"{len(failed)} runs failed ({', '.join(failed[:3])}): see their errors above; "
                          "the table needs every arm at every seed")
    results: dict[str, dict[int, dict]] = {arm: {} for arm in arms}
    for result in grid:
        results[result.config["arm"]][result.config["seed"]] = result.metrics
    return results


def _table(results: dict, reference: str, config: TrialConfig, seeds: list[int], arms_spec: str, runs: RunLog,
           parent: str, configs: dict[str, TrialConfig]) -> dict:
    """Build the table, log it on the parent run (text, CSV, metrics) and return it."""
    from trainables.data.datasets import get_dataset, read_split

    train = read_split(config.dataset, config.data_dir, get_dataset(config.dataset).train_split)
    groups = frequency_groups((train.labels == 1).sum(axis=0))
    rows = compare_table(results, reference, groups)
    mode = "fine-tuning" if config.finetune_backbone else "head only on cached features"
    title = (f"compare {arms_spec}: {len(results)} arms x {len(seeds)} training seeds ({', '.join(map(str, seeds))}; "
             f"data seed {config.data_seed}), {mode}, {config.epochs} epochs; mean ± sd, paired difference to "
             f"{reference} with its 95 % interval")
    text = format_table(rows, reference, title)
    if len({(c.backbone, c.image_size) for c in configs.values()}) > 1:  # arms on several backbones / resolutions
        from study.comparison.compare_sizes import sizes_text

        text += "\n" + sizes_text(results, configs)
    metrics = {f"{row['arm']}.{key}": float(value) for row in rows for key, value in row.items()
               if key not in ("arm", "seeds") and value == value}
    runs.log_metrics(parent, metrics, step=0)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "compare.txt").write_text(text + "\n")
        import pandas as pd

        pd.DataFrame(rows).to_csv(Path(tmp) / "compare.csv", index=False)
        (Path(tmp) / "results.json").write_text(json.dumps(results, indent=1, default=float))
        runs.log_artifacts(parent, tmp, "compare")
    return {"text": text, "rows": rows}
