"""Multi-objective early stopping for fine-tuning trials: a rung scheduler in the style of MOASHA
(Schmucker et al., Syne Tune), as a Ray Tune scheduler, and the Optuna searcher that reports its stops.

Rungs sit at epochs r_min * eta^i below max_t. When a trial reaches a rung, its (mAP, size) joins
the points recorded there; all of them are ranked by non-dominated sorting (then by mAP within a front),
and the trial continues only if it is within the top ceil(n / eta): the asynchronous successive-halving
rule with Pareto ranks instead of one score.

Within a front, mAP and not crowding distance breaks the tie (a Decision, measured): crowding gives both
ends of a front infinite distance, so with two points the order of arrival decided. In the benchmark's
two-level study the first trial at the rung (mAP 40.1 there, 473,040 parameters) beat the second
(58.6, 491,472: 4 % larger) and 7 of 8 fine-tuning trials stopped, the best among them. Fine-tuned
configurations differ in size by a few percent (the head only) and in mAP by many points, so the
spread that crowding buys is worth little here; promotion (study.reports.pareto.select_promoted) already spreads
the promoted configurations across sizes. A trial stopped this way
is told to Optuna as PRUNED (not COMPLETE with partial values, which would mislead the sampler: see
study.levels.search); its MLflow run ends FINISHED with stopped_early=true (see study.levels.callbacks).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from study.reports.pareto import non_dominated_ranks


def rungs(max_t: int, grace_period: int = 1, eta: int = 3) -> list[int]:
    """Milestones below max_t: grace_period, grace_period * eta, ... (max_t itself is the end, not a rung)."""
    if eta < 2 or grace_period < 1:
        raise ValueError(f"MOASHA: eta {eta} and grace_period {grace_period}: use eta >= 2 and grace_period >= 1")
    out, t = [], grace_period
    while t < max_t:
        out.append(t)
        t *= eta
    return out


def keeps(points: list[tuple[float, float]], index: int, eta: int) -> bool:
    """Whether point `index` of the (mAP, size) points recorded at a rung is in the top ceil(n / eta)
    by (non-dominated rank, -mAP); exact ties keep the earlier point."""
    high = np.array([p[0] for p in points], dtype=np.float64)
    low = np.array([p[1] for p in points], dtype=np.float64)
    ranks = non_dominated_ranks(high, low)
    order = np.lexsort((np.arange(len(points)), -high, ranks))
    position = int(np.flatnonzero(order == index)[0])
    return position < math.ceil(len(points) / eta)


class MOASHA(FIFOScheduler):
    """Asynchronous successive halving with non-dominated sorting of (mAP, the study's size) at each rung."""

    def __init__(self, max_t: int, grace_period: int = 1, eta: int = 3, time_attr: str = "epoch",
                 metrics: tuple[str, str] = ("mAP", "n_params")) -> None:
        super().__init__()
        self.eta, self.time_attr, self.metrics = eta, time_attr, metrics
        self.milestones = rungs(max_t, grace_period, eta)
        self.recorded: dict[int, list[tuple[float, float]]] = {m: [] for m in self.milestones}
        self.decided: dict[str, set[int]] = {}
        self.stopped: list[str] = []

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        t = int(result.get(self.time_attr, 0))
        done = self.decided.setdefault(trial.trial_id, set())
        for milestone in self.milestones:
            if t >= milestone and milestone not in done:
                done.add(milestone)
                if self.metrics[0] not in result or self.metrics[1] not in result:
                    continue
                points = self.recorded[milestone]
                points.append((float(result[self.metrics[0]]), float(result[self.metrics[1]])))
                if not keeps(points, len(points) - 1, self.eta):
                    self.stopped.append(trial.trial_id)
                    return TrialScheduler.STOP
        return TrialScheduler.CONTINUE

    def debug_string(self) -> str:
        return f"MOASHA: rungs {self.milestones}, eta {self.eta}"
