"""The MLflow store seen from the driver: its URI (resolved once) and the experiment a run goes to.

Ray workers run in other folders, so a relative SQLite path is made absolute before it is passed on.
The runs themselves are opened, logged and closed by `trainables.mlflow_runs`.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"


def resolve_tracking_uri(uri: str | None) -> str:
    """`--tracking-uri`, else $MLFLOW_TRACKING_URI, else sqlite:///mlflow.db; SQLite paths made absolute."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or DEFAULT_TRACKING_URI
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        uri = prefix + str(Path(uri[len(prefix):]).absolute())
    elif "://" not in uri:
        uri = Path(uri).absolute().as_uri()
    return uri


def experiment_id(client, name: str, uri: str) -> str:
    """The id of experiment `name`, created on first use; a SQLite store keeps artifacts beside it."""
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        return existing.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):
        artifacts = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    # "custom model development": the MLflow UI opens the experiment on its runs table, not on GenAI's overview
    return client.create_experiment(name, artifact_location=artifacts,
                                    tags={"mlflow.experimentKind": "custom_model_development"})
