"""The study's Tune callback: one line per finished or failed trial, and closing the MLflow runs of
trials a scheduler stopped (their own code never reached its end)."""

from __future__ import annotations

import sys

from trainables.mlflow_runs import FINAL_KEYS, RUNNING, RunLog, trial_run_id


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
                close_stopped_run(tracking_uri, runs_dir, trial.trial_id, r, trial.config.get("epochs", 0))
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


def close_stopped_run(tracking_uri: str, runs_dir: str, trial_id: str, result: dict, epochs: int) -> None:
    """Finish the MLflow run of a trial the scheduler stopped, with its last epoch's metrics.

    ASHA also stops a trial at its last epoch (max_t), so only one that ended earlier is tagged.
    """
    run_id = trial_run_id(runs_dir, trial_id)
    if run_id is None or "mAP" not in result:
        return
    runs = RunLog(tracking_uri)
    if runs.status(run_id) != RUNNING:
        return
    values = {k: float(result[k]) for k in FINAL_KEYS if k in result}
    values["wall_time_s"] = float(result.get("time_total_s", 0.0))
    epoch = int(result.get("epoch", 0))
    runs.client.set_tag(run_id, "stopped_early", str(epoch < epochs).lower())
    runs.finish(run_id, values, step=epoch)
