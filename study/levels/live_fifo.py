"""First-in first-out trial scheduling that looks only at the live trials.

Tune's FIFOScheduler picks the next trial by walking every trial of the run, finished ones included, at
every controller step: a screening run of 10,000 trials walks 10,000 trials many times a second (a cost per
trial that grows with the trials already run). Only the live trials (pending, running, paused) can be
picked, and there are about as many as run at once: this scheduler remembers the order they were added
in and forgets each one when it ends.
"""

from __future__ import annotations

import itertools

from ray.tune.experiment import Trial
from ray.tune.schedulers import FIFOScheduler


class LiveFIFOScheduler(FIFOScheduler):
    def __init__(self) -> None:
        super().__init__()
        self._order: dict[Trial, int] = {}
        self._count = itertools.count()

    def on_trial_add(self, tune_controller, trial: Trial) -> None:
        self._order[trial] = next(self._count)

    def on_trial_complete(self, tune_controller, trial: Trial, result: dict) -> None:
        self._order.pop(trial, None)

    def on_trial_error(self, tune_controller, trial: Trial) -> None:
        self._order.pop(trial, None)

    def on_trial_remove(self, tune_controller, trial: Trial) -> None:
        self._order.pop(trial, None)

    def choose_trial_to_run(self, tune_controller) -> Trial | None:
        live = sorted(tune_controller.get_live_trials(), key=lambda t: self._order.get(t, -1))
        for status in (Trial.PENDING, Trial.PAUSED):
            for trial in live:
                if trial.status == status:
                    return trial
        return None
