"""Ray Tune + OptunaSearch wiring of a study: build the Tuner, and run, resume or extend it.

The Optuna study lives in a journal file in the study folder, so its history survives a killed
driver and `extend` starts a new Tune run whose sampler sees every earlier result. Multi-objective
(maximise mAP, minimise n_params) passes metric/mode to the searcher only: set in TuneConfig they
would silently make it single-objective. `objective=map` searches mAP alone with ASHA.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import Any, Callable

from study.study_state import StudyState
from trainables.config import TrialConfig
from trainables.trial import FINAL_KEYS, imlgcn_trial, runs_in_process


def constrained_space(trial, space: Callable, num_classes: int, constants: dict[str, Any]) -> dict[str, Any]:
    """Define-by-run: the space's suggestions plus every other config key as a constant."""
    values = space(trial, num_classes) or {}
    chosen = set(trial.params) | set(values)
    return {**{k: v for k, v in constants.items() if k not in chosen}, **values}


def trial_resources(config: TrialConfig, cpus_per_worker: int) -> dict[str, float]:
    """The fast mode trains in the trial process (1 CPU); otherwise the trial only waits for its workers."""
    return {"cpu": float(cpus_per_worker)} if runs_in_process(config) else {"cpu": 0.01}


def trainable(state: StudyState, cpus_per_worker: int):
    """The wrapped trial function; built identically for run, resume and extend."""
    from ray import tune

    config = TrialConfig(**state.base_config)
    fn = tune.with_parameters(imlgcn_trial, study=state.context(cpus_per_worker))
    return tune.with_resources(fn, trial_resources(config, cpus_per_worker))


def searcher(state: StudyState):
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from ray.tune.search.optuna import OptunaSearch

    from search_spaces import get_space

    space = functools.partial(constrained_space, space=get_space(state.space), num_classes=state.num_classes,
                              constants=state.base_config)
    storage = optuna.storages.JournalStorage(JournalFileBackend(state.optuna_journal))
    metric, mode = (["mAP", "n_params"], ["max", "min"]) if state.objective == "multi" else ("mAP", "max")
    return OptunaSearch(space, metric=metric, mode=mode, study_name=state.name, storage=storage,
                        seed=state.base_config["seed"])


class TrialProgress:
    """One line on stderr per finished or failed trial (a Tune Callback, built lazily).

    A trial that ASHA stops is interrupted before it can close its MLflow run: the callback closes it
    as FINISHED with the metrics of its last epoch and the tag `stopped_early`.
    """

    @staticmethod
    def create(total: int, tracking_uri: str, runs_dir: str):
        from ray.tune import Callback

        class _Progress(Callback):
            done = 0

            def on_trial_complete(self, iteration, trials, trial, **info):
                _Progress.done += 1
                r = trial.last_result
                _close_stopped_run(tracking_uri, runs_dir, trial.trial_id, r, trial.config.get("epochs", 0))
                keys = ("embedding", "tau", "p") + (("pca_dim",) if trial.config.get("embedding") == "fpca" else ())
                searched = {k: trial.config.get(k) for k in keys}
                text = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in searched.items())
                print(f"imlgcn: trial {trial.trial_id} done ({_Progress.done}/{total}): mAP {r.get('mAP', float('nan')):.2f}, "
                      f"{r.get('n_params', 0) / 1e6:.3f} M params ({text}); driver RSS {driver_rss_mb():.0f} MB",
                      file=sys.stderr, flush=True)

            def on_trial_error(self, iteration, trials, trial, **info):
                print(f"imlgcn: trial {trial.trial_id} failed after its retries ({_error_cause(trial)}); "
                      "the study goes on", file=sys.stderr, flush=True)

        return _Progress()


def _error_cause(trial) -> str:
    """The last 'SomethingError: message' line of the trial's stored traceback (e.g. DataError: image X ...)."""
    try:
        text = str(trial.get_error() or "")
    except Exception:  # the error file is gone or unreadable: the trial folder still has the log
        text = ""
    causes = [line.strip() for line in text.splitlines() if "Error: " in line and not line.startswith(" ")]
    return causes[-1] if causes else "see the trial's error.txt in the study's tune folder"


def driver_rss_mb() -> float:
    """Resident memory of this (driver) process in MB: a long study must keep it flat."""
    import os
    import resource

    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak instead of the current value
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def _close_stopped_run(tracking_uri: str, runs_dir: str, trial_id: str, result: dict, epochs: int) -> None:
    """Finish the MLflow run of a trial the scheduler stopped (its own code never reached the end).

    ASHA also stops a trial at its last epoch (max_t), so only one that ended earlier is tagged.
    """
    import os
    import time

    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    marker = os.path.join(runs_dir, f"{trial_id}.run")
    if not os.path.exists(marker) or "mAP" not in result:
        return
    with open(marker) as handle:
        run_id = handle.read().strip()
    client = MlflowClient(tracking_uri=tracking_uri)
    if client.get_run(run_id).info.status != "RUNNING":
        return
    now = int(time.time() * 1000)
    values = {k: float(result[k]) for k in FINAL_KEYS if k in result}
    values["wall_time_s"] = float(result.get("time_total_s", 0.0))
    client.log_batch(run_id, metrics=[Metric(k, v, now, int(result.get("epoch", 0))) for k, v in values.items()])
    client.set_tag(run_id, "stopped_early", str(int(result.get("epoch", 0)) < epochs).lower())
    client.set_terminated(run_id, "FINISHED")


def trial_dirname(trial) -> str:
    """Short trial folders (Tune's default spells out the whole config)."""
    return f"trial_{trial.trial_id}"


# Tune saves its experiment state at most every 10 s by default ("auto"). A driver killed in that gap
# restores without the trials created since, generates new ones, and the study ends with more
# finished trials than asked (seen in tests/test_cluster.py). Our states are small: save every second.
EXPERIMENT_CHECKPOINT_S = "1"


def new_tuner(state: StudyState, run_name: str, num_samples: int, cpus_per_worker: int):
    from ray import tune

    from ray.tune.schedulers import ASHAScheduler

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_CHECKPOINT_S)

    config = TrialConfig(**state.base_config)
    scheduler, metric, mode = None, None, None
    if state.objective == "map":
        metric, mode = "mAP", "max"
        scheduler = ASHAScheduler(time_attr="epoch", max_t=config.epochs, grace_period=1)
    return tune.Tuner(
        trainable(state, cpus_per_worker),
        tune_config=tune.TuneConfig(search_alg=searcher(state), scheduler=scheduler, metric=metric, mode=mode,
                                    num_samples=num_samples, max_concurrent_trials=state.max_concurrent,
                                    trial_dirname_creator=trial_dirname, reuse_actors=True),
        run_config=tune.RunConfig(name=run_name, storage_path=str(state.folder / "tune"), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=2),
                                  callbacks=[TrialProgress.create(num_samples, state.tracking_uri,
                                                                  state.context(cpus_per_worker)["runs_dir"])]),
    )


def restored_tuner(state: StudyState, run_name: str, cpus_per_worker: int):
    from ray import tune

    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", EXPERIMENT_CHECKPOINT_S)
    path = str(state.folder / "tune" / run_name)
    if not tune.Tuner.can_restore(path):
        return None
    return tune.Tuner.restore(path, trainable=trainable(state, cpus_per_worker), resume_errored=True)
