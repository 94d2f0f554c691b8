"""The MLflow run lifecycle, in one place: open a run with its config, log its per-epoch curves, stamp
its final metrics, and close it FINISHED, FAILED or KILLED.

Runs are addressed by id (not through Ray's MLflow callback, which forgets its runs on restore). A
study persists each trial's run id in `<runs_dir>/<trial_id>.run`, so a retried or restored trial
reopens its own run: one run per trial id however often the trial restarts.
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import Iterator, Mapping

from trainables.metrics import FINAL_METRICS

# a finished run's result; the sizes are metrics so the UI can chart them (n_params: the paper's count, GCN
# weights included; n_params_inference: the folded model's, backbone + C x d)
FINAL_KEYS = (*FINAL_METRICS, "n_params", "n_params_inference")
# per-epoch report key -> MLflow metric key (the step is the epoch)
EPOCH_KEYS = {"pretrain_loss": "pretrain_loss", "pretrain_mAP": "pretrain_mAP", "loss": "train_loss",
              "mAP": "val_mAP", "CF1": "val_CF1", "OF1": "val_OF1"}
RUNNING, FINISHED, FAILED, KILLED = "RUNNING", "FINISHED", "FAILED", "KILLED"


def final_metrics(result: Mapping[str, float]) -> dict[str, float]:
    """The FINAL_KEYS of a run's last result, as floats."""
    return {key: float(result[key]) for key in FINAL_KEYS}


def trial_run_id(runs_dir: str, trial_id: str) -> str | None:
    """The MLflow run id recorded for a study trial, or None before the trial started."""
    marker = os.path.join(runs_dir, f"{trial_id}.run")
    if not os.path.exists(marker):
        return None
    with open(marker) as handle:
        return handle.read().strip()


class RunLog:
    """MLflow runs of one tracking store: create, log, close."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)

    def create(self, experiment_id: str, run_name: str, tags: Mapping[str, str],
               params: Mapping[str, object] | None = None) -> str:
        """A new RUNNING run with `params` logged (every value as text, as MLflow stores them)."""
        from mlflow.entities import Param

        run_id = self.client.create_run(experiment_id, tags=dict(tags), run_name=run_name).info.run_id
        if params:
            self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Stamp metric values at `step` (a run's final metrics use its last epoch as the step)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if rows:
            self.client.log_batch(run_id, metrics=rows)

    def log_epoch(self, run_id: str, report: Mapping[str, float]) -> None:
        """The curve values of one epoch report (pretrain or train), renamed by EPOCH_KEYS."""
        step = int(report.get("epoch", report.get("pretrain_epoch", 0)))
        self.log_metrics(run_id, {EPOCH_KEYS[k]: v for k, v in report.items() if k in EPOCH_KEYS}, step)

    def finish(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Log the final metrics and close the run FINISHED."""
        self.log_metrics(run_id, metrics, step)
        self.close(run_id, FINISHED)

    def close(self, run_id: str, status: str) -> None:
        self.client.set_terminated(run_id, status)

    def status(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.status

    @contextlib.contextmanager
    def failing(self, run_id: str) -> Iterator[None]:
        """Close the run FAILED on an error and KILLED on Ctrl+C, then re-raise. Other exits (Tune stopping
        a trial raises SystemExit in it) leave the run open for the driver to close; a run the driver has
        closed already (a scheduler's stop, which can also end the trial with an error) is left as it is."""
        try:
            yield
        except KeyboardInterrupt:
            self._close_open(run_id, KILLED)
            raise
        except Exception:
            self._close_open(run_id, FAILED)
            raise

    def _close_open(self, run_id: str, status: str) -> None:
        if self.status(run_id) == RUNNING:
            self.close(run_id, status)

    def record_trial(self, runs_dir: str, trial_id: str, experiment_id: str, parent_run_id: str,
                     params: Mapping[str, object], metrics: Mapping[str, float], tags: Mapping[str, str],
                     started_ms: int) -> str:
        """A finished trial's whole run in one batch (create, params + metrics, close): for trials that log
        nothing per epoch. A trial run again after a driver restart reuses its recorded run."""
        from mlflow.entities import Metric, Param

        run_id = trial_run_id(runs_dir, trial_id)
        if run_id is not None:
            return run_id
        tags = {"stage": "trial", "trial_id": trial_id, "mlflow.parentRunId": parent_run_id, **tags}
        run_id = self.client.create_run(experiment_id, start_time=started_ms, tags=tags, run_name=trial_id).info.run_id
        now = int(time.time() * 1000)
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                              metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self.client.set_terminated(run_id, FINISHED, end_time=now)
        _write_marker(runs_dir, trial_id, run_id)
        return run_id

    def trial_run(self, runs_dir: str, trial_id: str, experiment_id: str, parent_run_id: str,
                  params: Mapping[str, object], node_id: str, tags: Mapping[str, str] | None = None,
                  run_name: str | None = None) -> str:
        """The Tune trial's run: created with the full flat config as params (tags: stage=trial, trial_id,
        ray_node_id, the parent, and `tags`), or reopened on a retry."""
        run_id = trial_run_id(runs_dir, trial_id)
        if run_id is not None:
            self.client.update_run(run_id, status=RUNNING)
            self.client.set_tag(run_id, "ray_node_id", node_id)
            return run_id
        tags = {"stage": "trial", "trial_id": trial_id, "ray_node_id": node_id, "mlflow.parentRunId": parent_run_id,
                **(tags or {})}
        run_id = self.create(experiment_id, run_name or trial_id, tags, params)
        _write_marker(runs_dir, trial_id, run_id)
        return run_id


def _write_marker(runs_dir: str, trial_id: str, run_id: str) -> None:
    """Record `<runs_dir>/<trial_id>.run` atomically (see trial_run_id)."""
    os.makedirs(runs_dir, exist_ok=True)
    marker = os.path.join(runs_dir, f"{trial_id}.run")
    tmp = f"{marker}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        handle.write(run_id)
    os.replace(tmp, marker)
