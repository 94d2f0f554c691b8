"""A migrated MLflow SQLite store to start end-to-end tests from: creating one runs MLflow's schema
migrations, about 4 s per store (measured with the suite's load), paid once per test process instead of once
per test. The product's own first use (an empty folder) stays tested by the tests that expect no store."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_TEMPLATE: Path | None = None


def migrated_db(path: Path) -> None:
    """Copy a freshly migrated, empty MLflow store to `path` unless a store is already there."""
    global _TEMPLATE
    if path.exists():
        return
    if _TEMPLATE is None:
        from mlflow.tracking import MlflowClient

        folder = Path(tempfile.mkdtemp(prefix=f"imlgcn-mlflow-template-{os.getpid()}-"))
        atexit.register(shutil.rmtree, folder, True)  # the test process's own: gone when it ends
        MlflowClient(tracking_uri=f"sqlite:///{folder / 'template.db'}").search_experiments()
        _TEMPLATE = folder / "template.db"
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_TEMPLATE, path)
