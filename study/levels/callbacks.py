"""The study's console during a Tune run, and closing the MLflow runs of trials a scheduler stopped.

One line per fine-tuning trial (its searched values, mAP and its difference to the same-budget direct
model, exact parameters, seconds); screening, hundreds of trials, prints a line every tenth of the run.
A status line (running / pending / finished / failed, elapsed, an estimate of the time left, the best
trial so far) comes every 15 s, and is rewritten in place on a terminal. "Best" is the study's at that level:
each Tune run starts from the best the study stored before it (study/levels/study_best.py: the earlier Tune
runs of a screening, a resumed or extended study), so it names the trial the report names.
"""

from __future__ import annotations

import sys
import time

from study.driver.console import verbose
from study.levels.study_best import Best, StudyBest, best_text, better
from trainables.embeddings import key_applies
from trainables.trial.mlflow_runs import FINAL_KEYS, FINISHED, RUNNING, final_tags, store
from trainables.trial.run_markers import trial_run_id

STATUS_EVERY_S = 15.0


def _value(key: str, value) -> str:
    if isinstance(value, float):
        return f"{key}={value:.2e}" if key.endswith("_lr") else f"{key}={value:.3g}"
    return f"{key}={value}"


def _clock(seconds: float) -> str:
    if seconds != seconds:
        return "?"
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


class TrialProgress:
    """The console of one Tune run (a Tune Callback, built lazily so Ray is imported only when needed).

    A trial that a scheduler stops is interrupted before it can close its MLflow run: the callback closes
    it as FINISHED with the metrics of its last epoch and the tag `stopped_early`.
    """

    @staticmethod
    def create(start: int, total: int, tracking_uri: str, runs_dir: str, level: str = "finetune", searched: tuple = (),
               epochs: int = 0, best_of: StudyBest | None = None):
        """`start` of `total` trials ended before this Tune run (a screening in several runs counts as one);
        `best_of`: where the study's best trial so far is read when the run starts (also when restored)."""
        from ray.tune import Callback

        class _Progress(Callback):
            def __init__(self) -> None:
                self.done, self.failed, self.began, self.last_status = start, 0, time.time(), 0.0
                self.first_end = 0.0  # the first trial also pays for starting the actors: the estimate starts after it
                self.best: Best | None = None

            def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
                self.began = time.time()  # a restored run's callback was saved when the run was created
                if best_of is not None:
                    self.best = best_of.read()

            def _searched(self, config: dict) -> str:
                keys = [k for k in searched if k in config and key_applies(k, config.get("embedding"))]
                return " ".join(_value(k, config[k]) for k in keys)

            def on_trial_complete(self, iteration, trials, trial, **info):
                self.done += 1
                self.first_end = self.first_end or time.time()
                r = trial.last_result
                m_ap = r.get("mAP", float("nan"))
                rss = f"; driver RSS {driver_rss_mb():.0f} MB" if verbose() else ""
                if level == "screen":  # hundreds of trials: a line every tenth
                    self.best = better(self.best, m_ap, trial.trial_id)
                    if self.done * 10 // total > (self.done - 1) * 10 // total:
                        rate = (self.done - start) / max(time.time() - self.began, 1e-9) * 60
                        print(f"imlgcn: screened {self.done}/{total} head configurations on cached features "
                              f"({rate:.0f} a minute), {best_text(self.best)}{rss}",
                              file=sys.stderr, flush=True)
                    return
                stopped = close_stopped_run(tracking_uri, runs_dir, trial.trial_id, r, epochs)
                if not stopped:  # as the report's front: a trial a scheduler stopped has no full result
                    self.best = better(self.best, m_ap, trial.trial_id)
                outcome = (f"stopped after epoch {int(r.get('epoch', 0))} of {epochs} (mAP {m_ap:.2f})" if stopped else
                           f"mAP {m_ap:.2f} ({m_ap - r.get('direct_mAP', float('nan')):+.2f} vs direct)")
                print(f"imlgcn: trial {trial.trial_id} ({self.done}/{total}) {self._searched(trial.config)} -> "
                      f"{outcome}, {int(r.get('n_params', 0)):,} params, {r.get('time_total_s', 0):.0f} s{rss}",
                      file=sys.stderr, flush=True)

            def on_trial_error(self, iteration, trials, trial, **info):
                self.failed += 1
                print(f"imlgcn: trial {trial.trial_id} failed after its retries ({_error_cause(trial)}); "
                      "the study goes on", file=sys.stderr, flush=True)

            def on_step_end(self, iteration, trials, **info):
                now = time.time()
                if now - self.last_status < (1.0 if sys.stderr.isatty() else STATUS_EVERY_S) or not self.done:
                    return
                self.last_status = now
                running = sum(t.status == "RUNNING" for t in trials)
                pending = max(total - self.done - self.failed - running, 0)
                elapsed, ended = now - self.began, self.done + self.failed
                left = ((now - self.first_end) / max(ended - start - 1, 1) * (total - ended) if ended > start + 1
                        else float("nan"))
                text = (f"imlgcn: [{level} {self.done + self.failed}/{total}] running {running}, pending {pending}, "
                        f"finished {self.done}, failed {self.failed} | {_clock(elapsed)} elapsed, ~{_clock(left)} left "
                        f"| {best_text(self.best)}")
                if sys.stderr.isatty():
                    print(f"\r{text}\033[K", end="", file=sys.stderr, flush=True)
                else:
                    print(text, file=sys.stderr, flush=True)

            def on_experiment_end(self, trials, **info):
                if sys.stderr.isatty():
                    print(file=sys.stderr, flush=True)

        return _Progress()


def _error_cause(trial) -> str:
    """The last 'SomethingError: message' line of the trial's stored traceback (e.g. DataError: image X ...)."""
    from study.driver.failures import error_cause

    try:
        text = str(trial.get_error() or "")
    except Exception:  # the error file is gone or unreadable: the trial folder still has the log
        text = ""
    return error_cause(text) or "see the trial's error.txt in the study's tune folder"


def driver_rss_mb() -> float:
    """Resident memory of this (driver) process in MB: a long study must keep it flat."""
    import os
    import resource

    try:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:  # not Linux: the peak instead of the current value
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**10


def close_stopped_run(tracking_uri: str, runs_dir: str, trial_id: str, result: dict, epochs: int) -> bool:
    """Finish the MLflow run of a trial the scheduler stopped, with its last epoch's metrics; True when
    the trial was stopped before its last epoch.

    ASHA also stops a trial at its last epoch (max_t), so only one that ended earlier is tagged.
    """
    stopped = int(result.get("epoch", epochs)) < epochs
    run_id = trial_run_id(runs_dir, trial_id)
    if run_id is None or "mAP" not in result:
        return stopped
    runs = store(tracking_uri)
    status = runs.status(run_id)
    if status == FINISHED or (status != RUNNING and not stopped):
        return stopped  # closed by the trial itself (a stop can also end it with an error: that run is ours)
    values = {k: float(result[k]) for k in (*FINAL_KEYS, "direct_mAP") if k in result}
    values["wall_time_s"] = float(result.get("time_total_s", 0.0))
    epoch = int(result.get("epoch", 0))
    runs.set_tags(run_id, {"stopped_early": str(epoch < epochs).lower()})
    runs.finish(run_id, values, step=epoch, tags=final_tags(result))
    return stopped
