"""Per-epoch MLflow logging from rank 0 of a Ray Train worker group, into a run the driver created.

The driver persists the run id and passes it in; logging by id (instead of Ray's MLflow callback)
keeps exactly one run per training even when a worker group restarts from a checkpoint.
"""

from __future__ import annotations

import os
import time

# per-epoch report key -> MLflow metric key (the step is the epoch)
EPOCH_KEYS = {"pretrain_loss": "pretrain_loss", "pretrain_mAP": "pretrain_mAP", "loss": "train_loss",
              "mAP": "val_mAP", "CF1": "val_CF1", "OF1": "val_OF1"}


class EpochLogger:
    """Logs the per-epoch curves of one MLflow run with `step` = epoch."""

    def __init__(self, tracking_uri: str, run_id: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.run_id = run_id

    @classmethod
    def for_run(cls, tracking_uri: str | None, run_id: str | None) -> "EpochLogger | None":
        return cls(tracking_uri, run_id) if tracking_uri and run_id else None

    def log(self, metrics: dict) -> None:
        """Log the curve values of one epoch report (pretrain or train)."""
        from mlflow.entities import Metric

        step = int(metrics.get("epoch", metrics.get("pretrain_epoch", 0)))
        now = int(time.time() * 1000)
        rows = [Metric(EPOCH_KEYS[k], float(v), now, step) for k, v in metrics.items() if k in EPOCH_KEYS]
        if rows:
            self.client.log_batch(self.run_id, metrics=rows)


class TrialRuns:
    """One MLflow run per Tune trial id, its id persisted in the study folder.

    A retried or restored trial finds its run id there and continues the same run, so each trial id
    ends with exactly one FINISHED (or FAILED) run however often it was restarted.
    """

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, runs_dir: str) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=tracking_uri)
        self.experiment_id, self.parent_run_id, self.runs_dir = experiment_id, parent_run_id, runs_dir

    def start(self, trial_id: str, params: dict, node_id: str) -> str:
        """The trial's run (created with the full flat config as params, or reopened)."""
        from mlflow.entities import Param

        marker = os.path.join(self.runs_dir, f"{trial_id}.run")
        if os.path.exists(marker):
            with open(marker) as handle:
                run_id = handle.read().strip()
            self.client.update_run(run_id, status="RUNNING")
            self.client.set_tag(run_id, "ray_node_id", node_id)
            return run_id
        tags = {"stage": "trial", "trial_id": trial_id, "ray_node_id": node_id,
                "mlflow.parentRunId": self.parent_run_id}
        run_id = self.client.create_run(self.experiment_id, tags=tags, run_name=trial_id).info.run_id
        self.client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        os.makedirs(self.runs_dir, exist_ok=True)
        tmp = f"{marker}.{os.getpid()}.tmp"
        with open(tmp, "w") as handle:
            handle.write(run_id)
        os.replace(tmp, marker)
        return run_id

    def finish(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(run_id, metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()])
        self.client.set_terminated(run_id, "FINISHED")

    def fail(self, run_id: str) -> None:
        self.client.set_terminated(run_id, "FAILED")
