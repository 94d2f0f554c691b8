"""Ray Tune + OptunaSearch wiring of a study's two levels: build a Tuner for a new Tune run, or restore one.

Level `screen` judges head configurations on cached features (long-lived actors, one CPU each); level
`finetune` trains the promoted ones with the backbone on Ray Train workers, with multi-objective early
stopping (MOASHA). Each level has its own Optuna study in the study's journal (`NAME:screen`,
`NAME:finetune`), so fine-tuned results never mix with screening's cheaper ones in one sampler, and the
journal survives a killed driver. Multi-objective (maximise mAP, minimise the study's size) passes metric/mode
to the searcher only: set in TuneConfig they would silently make it single-objective.
"""

from __future__ import annotations

import functools
import os
import zlib
from dataclasses import replace
from typing import Any, Callable

from study.levels.callbacks import TrialProgress
from study.levels.study_best import StudyBest
from study.driver.record import StudyRecord
from trainables.config import TrialConfig
from trainables.trial.ray_runtime import CHECKPOINTS_KEPT
from trainables.trial.trainable import imlgcn_trial, screen_trial, trains_in_trial, trial_resources

# Tune saves its experiment state at most every 10 s by default ("auto"). A driver killed in that gap
# restores without the trials created since, generates new ones, and the study ends with more
# finished trials than asked (seen in tests/test_cluster.py). Fine-tuning's states are small: save every
# second. Screening is never restored from Tune's state (level_runs._run_screening counts its finished trials in
# MLflow), and its state grows with every trial (24 KB each, rewritten whole at each save: at 3,000 trials
# a third of the driver's time): it is saved once, at the end. A TUNE_GLOBAL_CHECKPOINT_S set by the user wins.
EXPERIMENT_CHECKPOINT_S = {"screen": "1000000000", "finetune": "1"}
USER_CHECKPOINT_S = os.environ.get("TUNE_GLOBAL_CHECKPOINT_S")
# TPE's cost per sampled trial grows with the trials told (multi-objective: a non-domination sort of all of
# them per suggestion; 16 ms at 100, 220 ms at 3,000 in bench/sweep_scale.py --parts samplers): a screening
# run asking more than this samples at random (seeded), whose cost stays flat.
TPE_MAX_TRIALS = 1000
TRIAL_MAX_FAILURES = 2
LEVELS = ("screen", "finetune")


def constrained_space(trial, head: Callable, finetune: Callable | None, num_classes: int,
                      constants: dict[str, Any]) -> dict[str, Any]:
    """Define-by-run: the space's suggestions (the head's, plus the fine-tuning ones at that level). The
    other config keys are the level's constants, which the trial function adds (`trainable`): a Tune trial
    keeps its config in memory and in its state, so a sweep's thousands of trials carry only what was
    searched. A direct-only base config (embedding=none, epochs=0) has no head and no stage 3: the trials
    are its stage-1 direct model, and the space's head and fine-tuning suggestions, which would not change
    it, are not made."""
    values: dict[str, Any] = {}
    if not (constants["embedding"] == "none" and constants["epochs"] == 0):
        values.update(head(trial, num_classes) or {})
        if finetune is not None:
            values.update(finetune(trial) or {})
    return values


def optuna_study_name(record: StudyRecord, level: str) -> str:
    return f"{record.name}:{level}"


def trainable(record: StudyRecord, level: str, cpus_per_worker: int, tune_run: str = ""):
    """The wrapped trial function of a level; built identically for run, resume and extend. `tune_run`
    (the logical run name) tags the MLflow runs of screened trials."""
    from ray import tune

    from study.levels.references import point_configs
    from trainables.stages.baseline import baseline_config, baseline_key
    from trainables.stages.stage_cache import stage1_key

    constants = TrialConfig(**record.level_config(level))
    references = tuple((stage1_key(point), baseline_key(baseline_config(point)))
                       for point in point_configs(record, level))
    context = replace(record.context(cpus_per_worker), level=level, tune_run=tune_run, baseline_keys=references)
    fixed = record.level_config(level)  # every key the space does not search (see constrained_space)
    if level == "screen":  # a head on cached features: one CPU, in the trial's process
        return tune.with_resources(tune.with_parameters(screen_trial, context=context, constants=fixed),
                                   {"cpu": cpus_per_worker})
    return tune.with_resources(tune.with_parameters(imlgcn_trial, context=context, constants=fixed),
                               trial_resources(constants, context))


def sampler_name(level: str, trials: int, asked: str = "auto") -> str:
    """The Optuna sampler of a Tune run of `trials`: fine-tuning's is TPE; screening's is `asked`, where auto
    is TPE up to TPE_MAX_TRIALS and random search above."""
    if level != "screen":
        return "tpe"
    if asked != "auto":
        return asked
    return "random" if trials > TPE_MAX_TRIALS else "tpe"


def sampler(name: str, seed: int, tune_run: str = "", multi_objective: bool = True):
    """A seeded sampler. Random search draws from a seed of its own per Tune run: a screening in several Tune
    runs (or resumed) would otherwise draw the same configurations again in each.

    TPE's arguments whose defaults changed between Optuna 4 and 5 are set here, so that the installed version
    does not choose the search: `constant_liar=True` (5's default; 4's was False: trials running at once are
    scored as the worst, so concurrent trials do not all sample the same region) and `multivariate` for a
    single objective only (5's automatic choice; 4 used independent TPE for both). See README, Decisions."""
    import optuna

    if name == "random":
        return optuna.samplers.RandomSampler(seed=zlib.crc32(f"{seed}:{tune_run}".encode()))
    return optuna.samplers.TPESampler(seed=seed, constant_liar=True, multivariate=not multi_objective)


def searcher(record: StudyRecord, level: str, points: list[dict] | None = None, sampling: str = "tpe",
             tune_run: str = ""):
    """OptunaSearch over the level's space with the sampler `sampling`; level 2 starts from the promoted
    `points` (their head values fixed, the backbone's learning rate sampled) and tells scheduler-stopped
    trials as PRUNED."""
    from search_spaces import get_space
    from study.driver.console import quiet_libraries

    quiet_libraries()
    chosen = get_space(record.space)
    space = functools.partial(constrained_space, head=chosen.head,
                              finetune=chosen.finetune if level == "finetune" else None,
                              num_classes=record.num_classes, constants=record.level_config(level))
    from study.levels.search import StudySearch, journal_storage

    storage = journal_storage(str(record.optuna_journal))
    metric, mode = (["mAP", record.size_metric], ["max", "min"]) if record.objective == "multi" else ("mAP", "max")
    chosen_sampler = sampler(sampling, record.base_config["seed"], tune_run, record.objective == "multi")
    return StudySearch(space, metric=metric, mode=mode, study_name=optuna_study_name(record, level), storage=storage,
                       sampler=chosen_sampler, points_to_evaluate=points or None,
                       epochs=int(record.base_config["epochs"]), runs_dir=str(record.runs_dir),
                       metric_names=metric if isinstance(metric, list) else [metric], forget_finished=level == "screen")


def scheduler(record: StudyRecord, level: str):
    """At level 1 first-in first-out over the live trials (a screened head trains in under a second: no
    early stopping); at level 2 ASHA for objective=map and MOASHA for the multi-objective study (eta = 0
    turns early stopping off)."""
    from ray.tune.schedulers import ASHAScheduler

    epochs = int(record.base_config["epochs"])
    if level == "screen":
        from study.levels.live_fifo import LiveFIFOScheduler

        return LiveFIFOScheduler()
    if not record.eta or epochs < 2:
        return None
    if record.objective == "map":
        return ASHAScheduler(time_attr="epoch", metric="mAP", mode="max", max_t=epochs, grace_period=1,
                             reduction_factor=record.eta)
    from study.levels.moasha import MOASHA

    return MOASHA(max_t=epochs, grace_period=1, eta=record.eta, metrics=("mAP", record.size_metric))


def searched_names(record: StudyRecord, level: str) -> tuple[str, ...]:
    """The config keys the level's space suggests (every branch), in the order it suggests them."""
    from search_spaces import get_space

    return get_space(record.space).keys(record.num_classes, level)


def reuses_actors(record: StudyRecord, level: str) -> bool:
    """Whether Tune reuses a level's trial processes: screening's and those of one-worker fine-tuning
    trials, which train in them (imports, the stage-1 cache and the heads' inputs stay loaded, and a
    stopped trial's CPUs pass straight to the next trial); not those of data-parallel trials, whose
    actor waits for its Train workers and must die with them when a scheduler stops it."""
    return level == "screen" or trains_in_trial(TrialConfig(**record.level_config(level)))


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


def set_checkpoint_period(level: str) -> None:
    """Tune reads TUNE_GLOBAL_CHECKPOINT_S when a run starts: the level's period, or the user's."""
    os.environ["TUNE_GLOBAL_CHECKPOINT_S"] = USER_CHECKPOINT_S or EXPERIMENT_CHECKPOINT_S[level]


def new_tuner(record: StudyRecord, run_name: str, level: str, num_samples: int, cpus_per_worker: int,
              max_concurrent: int, points: list[dict] | None = None, logical_name: str = "", sampling: str = "tpe",
              progress_of: tuple[int, int] | None = None):
    """A new Tune run `run_name` of `num_samples` trials; `progress_of` (ended before, planned in all): the
    console counts a screening run's parts as one."""
    from ray import tune

    set_checkpoint_period(level)
    # keeping one checkpoint per trial makes Tune save its (small) state after each, and warn that it did
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    return tune.Tuner(
        trainable(record, level, cpus_per_worker, logical_name or run_name),
        tune_config=tune.TuneConfig(search_alg=searcher(record, level, points, sampling, run_name), scheduler=scheduler(record, level),
                                    num_samples=num_samples, max_concurrent_trials=max_concurrent,
                                    trial_dirname_creator=trial_dirname, reuse_actors=reuses_actors(record, level)),
        run_config=tune.RunConfig(name=run_name, storage_path=str(record.tune_dir), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=TRIAL_MAX_FAILURES),
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT),
                                  callbacks=[TrialProgress.create(*(progress_of or (0, num_samples)),
                                                                  record.tracking_uri, str(record.runs_dir), level,
                                                                  searched_names(record, level),
                                                                  int(record.base_config["epochs"]),
                                                                  StudyBest.of(record, level))]),
    )


def restored_tuner(record: StudyRecord, run_name: str, level: str, cpus_per_worker: int):
    """The Tune run `run_name` restored with its searcher state, or None when it never saved any."""
    from ray import tune

    set_checkpoint_period(level)
    path = str(record.tune_dir / run_name)
    if not tune.Tuner.can_restore(path):
        return None
    return tune.Tuner.restore(path, trainable=trainable(record, level, cpus_per_worker), resume_errored=True)
