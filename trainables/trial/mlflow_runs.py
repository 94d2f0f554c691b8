"""Everything this project does with MLflow, in one place with trainables.trial.mlflow_registry: one
client per tracking store and process (`store(uri)`); experiments; the run lifecycle (open a run with its
config, log its per-epoch curves, stamp its final metrics, close it FINISHED, FAILED or KILLED); searching
runs. Artifacts, the model registry and downloading a model (the driver's calls alone) are RunLog's too,
from ModelRegistry (mlflow_registry.py). No other module touches MLflow's client or its process-wide URI.

Runs are addressed by id (not through Ray's MLflow callback, which forgets its runs on restore). A
study persists each trial's run id in `<runs_dir>/<trial_id>.run` (trainables.trial.run_markers), so a retried or
restored trial reopens its own run: one run per trial id however often the trial restarts.
"""

from __future__ import annotations

import contextlib
import functools
import os
import time
from pathlib import Path
from typing import Any, Iterator, Mapping

from trainables.size_measures import DEVICE_KEY, SIZE_KEYS
from trainables.training.metrics import FINAL_METRICS
from trainables.trial.mlflow_registry import ModelRegistry
from trainables.trial.run_markers import (INTENT, LoggedRun, logged_runs, marked_trials, pending_intents, trial_run_id,
                                    write_marker)

# a finished run's result; the sizes (trainables.models.sizes) are metrics so the UI can chart them; the device
# their timings come from is the run's tag DEVICE_KEY
FINAL_KEYS = (*FINAL_METRICS, *SIZE_KEYS)
# per-epoch report key -> MLflow metric key (the step is the epoch)
EPOCH_KEYS = {"pretrain_loss": "pretrain_loss", "pretrain_mAP": "pretrain_mAP", "loss": "train_loss",
              "mAP": "val_mAP", "CF1": "val_CF1", "OF1": "val_OF1"}
RUNNING, FINISHED, FAILED, KILLED = "RUNNING", "FINISHED", "FAILED", "KILLED"
PAGE = 10_000  # runs per search request (a study of thousands of trials is read in pages)


def final_metrics(result: Mapping[str, float]) -> dict[str, float]:
    """The FINAL_KEYS of a run's last result, as floats."""
    return {key: float(result[key]) for key in FINAL_KEYS}


# config keys the study's searcher adds to a trial's config (study.levels.search): the Optuna study and trial the
# trial's MLflow run is tagged with when the trial opens it (not by the driver: one MLflow write less there)
SEARCH_TAGS = ("optuna_study", "optuna_trial")


def search_tags(config: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A trial's Tune config split into (the TrialConfig values, the searcher's tags SEARCH_TAGS)."""
    values = {k: v for k, v in config.items() if k not in SEARCH_TAGS}
    return values, {k: str(config[k]) for k in SEARCH_TAGS if k in config}


def final_tags(result: Mapping[str, object]) -> dict[str, str]:
    """The tags of a run's last result: the device its latency was timed on."""
    return {DEVICE_KEY: str(result[DEVICE_KEY])} if DEVICE_KEY in result else {}


@functools.lru_cache(maxsize=8)
def store(tracking_uri: str) -> "RunLog":
    """The one RunLog (and MLflow client) of this process for `tracking_uri`; a SQLite store is created or
    upgraded first, by one process at a time (trainables.trial.mlflow_schema)."""
    from trainables.trial.mlflow_schema import ready

    ready(tracking_uri)
    return RunLog(tracking_uri)


class RunLog(ModelRegistry):
    """One MLflow tracking store: experiments, runs, artifacts and registered models. Build it with
    `store(uri)`, which keeps one per store and process."""

    def __init__(self, tracking_uri: str) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking_uri = tracking_uri
        self._client = MlflowClient(tracking_uri=tracking_uri)

    # --- experiments
    def experiment_id(self, name: str) -> str:
        """The id of experiment `name`, created on first use; a SQLite store keeps artifacts beside it, and
        the UI opens it on its runs table ("custom model development"), not on GenAI's overview."""
        existing = self._client.get_experiment_by_name(name)
        if existing is not None:
            return existing.experiment_id
        artifacts = None
        if self.tracking_uri.startswith("sqlite:///"):
            artifacts = (Path(self.tracking_uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
        return self._client.create_experiment(name, artifact_location=artifacts,
                                              tags={"mlflow.experimentKind": "custom_model_development"})

    def find_experiment(self, name: str) -> str | None:
        """The id of experiment `name`, or None when the store has none of that name."""
        existing = self._client.get_experiment_by_name(name)
        return None if existing is None else existing.experiment_id

    def experiment_name(self, experiment_id: str) -> str | None:
        """The name of experiment `experiment_id`, or None when the store does not hold it."""
        from mlflow.exceptions import MlflowException

        try:
            return self._client.get_experiment(experiment_id).name
        except MlflowException:
            return None

    # --- runs
    def create(self, experiment_id: str, run_name: str, tags: Mapping[str, str],
               params: Mapping[str, object] | None = None) -> str:
        """A new RUNNING run with `params` logged (every value as text, as MLflow stores them)."""
        from mlflow.entities import Param

        run_id = self._client.create_run(experiment_id, tags=dict(tags), run_name=run_name).info.run_id
        if params:
            self._client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """Stamp metric values at `step` (a run's final metrics use its last epoch as the step)."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        rows = [Metric(k, float(v), now, int(step)) for k, v in metrics.items()]
        if rows:
            self._client.log_batch(run_id, metrics=rows)

    def log_epoch(self, run_id: str, report: Mapping[str, float]) -> None:
        """The curve values of one epoch report (pretrain or train), renamed by EPOCH_KEYS."""
        step = int(report.get("epoch", report.get("pretrain_epoch", 0)))
        self.log_metrics(run_id, {EPOCH_KEYS[k]: v for k, v in report.items() if k in EPOCH_KEYS}, step)

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        from mlflow.entities import RunTag

        self._client.log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def finish(self, run_id: str, metrics: Mapping[str, float], step: int, tags: Mapping[str, str] | None = None) -> None:
        """Log the final metrics (and tags) and close the run FINISHED."""
        if tags:
            self.set_tags(run_id, tags)
        self.log_metrics(run_id, metrics, step)
        self.close(run_id, FINISHED)

    def close(self, run_id: str, status: str) -> None:
        self._client.set_terminated(run_id, status)

    def reopen(self, run_id: str) -> None:
        """Mark a closed run RUNNING again (a resumed study's parent run, a retried trial's run)."""
        self._client.update_run(run_id, status=RUNNING)

    def status(self, run_id: str) -> str:
        return self._client.get_run(run_id).info.status

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
        intent = Path(runs_dir, f"{trial_id}{INTENT}")  # the run may exist unmarked (see finished_trials)
        os.makedirs(runs_dir, exist_ok=True)
        intent.touch()
        tags = {"stage": "trial", "trial_id": trial_id, "mlflow.parentRunId": parent_run_id, **tags}
        run_id = self._client.create_run(experiment_id, start_time=started_ms, tags=tags, run_name=trial_id).info.run_id
        now = int(time.time() * 1000)
        self._client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()],
                               metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()])
        self._client.set_terminated(run_id, FINISHED, end_time=now)
        logged = LoggedRun(run_id, now, {k: str(v) for k, v in params.items()},
                           {k: float(v) for k, v in metrics.items()}, {**tags, "mlflow.runName": trial_id})
        write_marker(runs_dir, trial_id, run_id, logged)
        intent.unlink()
        return run_id

    def finished_trials(self, runs_dir: str, experiment_id: str, query: str) -> set[str]:
        """The trial ids of `record_trial`'s runs in `runs_dir` that finished, read from the folder, not by
        reading every run back: a run is marked (`<trial_id>.run`) once FINISHED, and its intent file
        (`<trial_id>.intent`) removed once marked. A process killed in between leaves the intent: only
        those trials are looked up in MLflow (their FINISHED runs matching `query`)."""
        done = marked_trials(runs_dir)
        for trial_id in pending_intents(runs_dir):
            if self.search(experiment_id, f"{query} and tags.trial_id = '{trial_id}' and "
                                          "attributes.status = 'FINISHED'", max_results=1):
                done.add(trial_id)
        return done

    def recorded_trials(self, runs_dir: str, experiment_id: str, query: str) -> list[LoggedRun]:
        """The FINISHED runs of `record_trial`'s trials in `runs_dir`, read from their markers; the few a
        killed process left unmarked (an intent) are read from MLflow (FINISHED runs matching `query`), and
        all of them when an earlier version marked them (run id only)."""
        found, unread = logged_runs(runs_dir)
        if unread:  # markers of an earlier version: the folder's runs in one search
            return self.search_logged(experiment_id, f"{query} and attributes.status = 'FINISHED'")
        for trial_id in pending_intents(runs_dir):
            found += self.search_logged(experiment_id, f"{query} and tags.trial_id = '{trial_id}' and "
                                                       "attributes.status = 'FINISHED'")
        return found

    def trial_run(self, runs_dir: str, trial_id: str, experiment_id: str, parent_run_id: str,
                  params: Mapping[str, object], node_id: str, tags: Mapping[str, str] | None = None,
                  run_name: str | None = None) -> str:
        """The Tune trial's run: created with the full flat config as params (tags: stage=trial, trial_id,
        ray_node_id, the parent, and `tags`), or reopened on a retry."""
        run_id = trial_run_id(runs_dir, trial_id)
        if run_id is not None:
            self.reopen(run_id)
            self.set_tags(run_id, {"ray_node_id": node_id})
            return run_id
        tags = {"stage": "trial", "trial_id": trial_id, "ray_node_id": node_id, "mlflow.parentRunId": parent_run_id,
                **(tags or {})}
        run_id = self.create(experiment_id, run_name or trial_id, tags, params)
        write_marker(runs_dir, trial_id, run_id)
        return run_id

    # --- reading runs
    def search(self, experiment_id: str, query: str, max_results: int | None = None, order_by: list[str] | None = None):
        """The runs of an experiment matching `query` (MLflow's filter syntax), every page unless
        `max_results` caps them."""
        runs, token = [], None
        while True:
            size = PAGE if max_results is None else min(PAGE, max_results - len(runs))
            page = self._client.search_runs([experiment_id], query, max_results=size, order_by=order_by,
                                            page_token=token)
            runs.extend(page)
            token = page.token
            if not token or (max_results is not None and len(runs) >= max_results):
                return runs

    def search_logged(self, experiment_id: str, query: str) -> list[LoggedRun]:
        """`search`, as the values the report reads (LoggedRun)."""
        return [LoggedRun(run.info.run_id, run.info.end_time or 0, dict(run.data.params), dict(run.data.metrics),
                          dict(run.data.tags)) for run in self.search(experiment_id, query)]

    def metric_history(self, run_id: str, key: str) -> list:
        return self._client.get_metric_history(run_id, key)
