"""The MLflow calls only the driver makes on a tracking store: uploading artifacts (a model, a report, a
comparison's tables), registering models and setting their aliases (`imlgcn study export`), and
downloading a runs:/ or models:/ URI (`imlgcn predict`). A trial never makes them. They are methods of
RunLog (trainables.trial.mlflow_runs), which mixes this class in and holds the client (`_client`) and the
store's `tracking_uri` they use.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Mapping


class ModelRegistry:
    """Artifacts, the model registry and downloads of one tracking store: mixed into RunLog."""

    _client: Any  # RunLog's MlflowClient
    tracking_uri: str

    # --- artifacts
    def log_artifacts(self, run_id: str, folder: str | Path, path: str) -> None:
        """Upload every file under `folder` to the run's artifact `path`."""
        self._client.log_artifacts(run_id, str(folder), path)

    def log_artifact(self, run_id: str, file: str | Path, path: str) -> None:
        self._client.log_artifact(run_id, str(file), artifact_path=path)

    def download(self, uri: str, folder: str | Path) -> Path:
        """A runs:/ or models:/ artifact URI of this store, downloaded into `folder`."""
        import mlflow

        with self._process_wide_uri():  # a models:/ URI is resolved with a default MlflowClient() (MLflow 3.17)
            return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder),
                                                            tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri))

    # --- model registry
    def registered_versions(self, name: str, description: str) -> dict[str, object]:
        """trial_id -> model version of registered model `name` (created empty, with `description`)."""
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(name)
        except MlflowException:
            self._client.create_registered_model(name, description=description)
        return {v.tags.get("trial_id"): v for v in self._client.search_model_versions(f"name = '{name}'")}

    def register_model(self, name: str, experiment_id: str, run_id: str, folder: str | Path,
                       tags: Mapping[str, str], model_name: str):
        """Log `folder` as a logged model of run `run_id` (the runs table's Models column) and register it
        as a new version of `name`; returns the version."""
        from mlflow.entities import LoggedModelOutput

        model = self._client.create_logged_model(experiment_id, name=model_name, source_run_id=run_id, tags=dict(tags))
        self._client.log_model_artifacts(model.model_id, str(folder))
        self._client.finalize_logged_model(model.model_id, "READY")
        self._client.log_outputs(run_id, [LoggedModelOutput(model.model_id, step=0)])
        with self._process_wide_uri():  # the SQL registry resolves a models:/<id> source with MlflowClient()
            return self._client.create_model_version(name, source=f"models:/{model.model_id}", run_id=run_id,
                                                     tags=dict(tags), model_id=model.model_id)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._client.set_registered_model_alias(name, alias, version)

    @contextlib.contextmanager
    def _process_wide_uri(self):
        """This store as MLflow's process-wide tracking and registry URI for one call, then the previous
        ones back. MLflow 3.17 forces it in two places: the SQL model registry's create_model_version and
        the models:/ artifact repository both build a default MlflowClient() (the global URIs) whatever
        client or URIs the caller passed; without this, a store other than ./mlflow.db is not found."""
        import mlflow

        tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_registry_uri(self.tracking_uri)
        try:
            yield
        finally:
            mlflow.set_tracking_uri(tracking)
            mlflow.set_registry_uri(registry)
