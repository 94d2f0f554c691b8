"""Per-epoch MLflow logging from rank 0 of a Ray Train worker group, into a run the driver created.

The driver persists the run id and passes it in; logging by id (instead of Ray's MLflow callback)
keeps exactly one run per training even when a worker group restarts from a checkpoint.
"""

from __future__ import annotations

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
