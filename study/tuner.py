"""Ray Tune + OptunaSearch wiring of a study: build the Tuner for a new Tune run, or restore one.

The Optuna study lives in a journal file in the study folder, so its history survives a killed
driver and `extend` starts a new Tune run whose sampler sees every earlier result. Multi-objective
(maximise mAP, minimise n_params) passes metric/mode to the searcher only: set in TuneConfig they
would silently make it single-objective. `objective=map` searches mAP alone with ASHA.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

from study.callbacks import TrialProgress
from study.record import StudyRecord
from trainables.config import TrialConfig
from trainables.trainable import imlgcn_trial, trial_resources

# Tune saves its experiment state at most every 10 s by default ("auto"). A driver killed in that gap
# restores without the trials created since, generates new ones, and the study ends with more
# finished trials than asked (seen in tests/test_cluster.py). Our states are small: save every second.
EXPERIMENT_CHECKPOINT_S = "1"
TRIAL_MAX_FAILURES = 2


def constrained_space(trial, space: Callable, num_classes: int, constants: dict[str, Any]) -> dict[str, Any]:
    """Define-by-run: the space's suggestions plus every other config key as a constant."""
    values = space(trial, num_classes) or {}
    chosen = set(trial.params) | set(values)
    return {**{k: v for k, v in constants.items() if k not in chosen}, **values}


def trainable(record: StudyRecord, cpus_per_worker: int):
    """The wrapped trial function; built identically for run, resume and extend."""
    from ray import tune

    context = record.context(cpus_per_worker)
    fn = tune.with_parameters(imlgcn_trial, context=context.to_dict())
    return tune.with_resources(fn, trial_resources(TrialConfig(**record.base_config), context))


def searcher(record: StudyRecord):
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import get_space

    space = functools.partial(constrained_space, space=get_space(record.space), num_classes=record.num_classes,
                              constants=record.base_config)
    storage = optuna.storages.JournalStorage(JournalFileBackend(record.optuna_journal))
    metric, mode = (["mAP", "n_params"], ["max", "min"]) if record.objective == "multi" else ("mAP", "max")
    return OptunaSearch(space, metric=metric, mode=mode, study_name=record.name, storage=storage,
                        seed=record.base_config["seed"])


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


def new_tuner(record: StudyRecord, run_name: str, num_samples: int, cpus_per_worker: int):
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_CHECKPOINT_S)
    config = TrialConfig(**record.base_config)
    scheduler, metric, mode = None, None, None
    if record.objective == "map":
        metric, mode = "mAP", "max"
        scheduler = ASHAScheduler(time_attr="epoch", max_t=config.epochs, grace_period=1)
    return tune.Tuner(
        trainable(record, cpus_per_worker),
        tune_config=tune.TuneConfig(search_alg=searcher(record), scheduler=scheduler, metric=metric, mode=mode,
                                    num_samples=num_samples, max_concurrent_trials=record.max_concurrent,
                                    trial_dirname_creator=trial_dirname, reuse_actors=True),
        run_config=tune.RunConfig(name=run_name, storage_path=str(record.tune_dir), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=TRIAL_MAX_FAILURES),
                                  callbacks=[TrialProgress.create(num_samples, record.tracking_uri,
                                                                  str(record.runs_dir))]),
    )


def restored_tuner(record: StudyRecord, run_name: str, cpus_per_worker: int):
    from ray import tune

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_CHECKPOINT_S)
    path = str(record.tune_dir / run_name)
    if not tune.Tuner.can_restore(path):
        return None
    return tune.Tuner.restore(path, trainable=trainable(record, cpus_per_worker), resume_errored=True)
