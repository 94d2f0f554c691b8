"""Trainings that are not searched (`imlgcn train`, and the references of a study or a comparison: stage 1
and the same-budget direct models), run as Tune trials on the driver's Ray: one trial per training, as
many at once as the cluster holds, each placed by Ray (on a cluster: wherever its CPUs or GPU are).

A training runs as a study's trials do (`trainable.run_trial`): in its Tune trial's own process on one
worker, on Ray Train workers when data parallel. Tune retries a failed one from its last checkpoint, and a
Tune run the driver did not finish is restored when `restore` is set (a study's references after a crash).
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from study.driver.failures import TrainingFailed, error_cause
from trainables.config import TrialConfig
from trainables.trial.run_context import RunContext, clear_staging


def run_trainings(trainings: dict[str, tuple[TrialConfig, RunContext]], storage: str | Path, name: str,
                  max_concurrent: int, restore: bool = False) -> dict[str, dict]:
    """Train each (config, context) of `trainings` (name -> pair); returns name -> its final metrics.
    A training that fails after its retries is a TrainingFailed naming it and its cause."""
    from ray import tune

    from trainables.trial.ray_runtime import CHECKPOINTS_KEPT
    from trainables.trial.trainable import train_trial, trains_in_trial, trial_resources

    def resources(spec: dict) -> dict:
        config, context = trainings[spec["training"]]
        return trial_resources(config, context)

    trainable = tune.with_resources(tune.with_parameters(train_trial, trainings=trainings), resources)
    path = Path(storage).absolute() / name
    if restore and tune.Tuner.can_restore(str(path)):
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True)
    else:
        tuner = tune.Tuner(
            trainable, param_space={"training": tune.grid_search(list(trainings))},
            tune_config=tune.TuneConfig(max_concurrent_trials=max(1, max_concurrent),
                                        reuse_actors=all(trains_in_trial(config) for config, _ in trainings.values()),
                                        trial_dirname_creator=lambda trial: f"trial_{trial.config['training']}"[:120]),
            run_config=tune.RunConfig(name=name, storage_path=str(Path(storage).absolute()), verbose=0,
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT)))
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the command's result
        grid = tuner.fit()
    for folder in {context.train_storage for _, context in trainings.values()}:
        clear_staging(folder)
    failed = [(result.config.get("training"), result.error) for result in grid if result.error]
    if failed:
        training, error = failed[0]
        raise TrainingFailed(f"training {training} failed after its retries: {error_cause(str(error)) or type(error).__name__} "
                             "(the log above has the traceback)")
    return {result.config["training"]: result.metrics for result in grid}
