"""The MLflow store seen from the driver: its URI, resolved once.

Ray workers run in other folders, so a relative SQLite path is made absolute before it is passed on.
Everything else (experiments, runs, artifacts, models) goes through `trainables.trial.mlflow_runs`.
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
