"""A SQLite MLflow store is created or upgraded once, by one process, under a lock; a half-made one is named.

MLflow creates and migrates a SQLite store from whichever process opens it first, and its tracking and
model-registry stores take no lock for that: two processes opening one new store at once fail (`table ...
already exists`, `duplicate column name`) and can leave it half-migrated, after which every open fails.
`ready(uri)` runs before MLflow touches the file (trainables.trial.mlflow_runs.store calls it once per process and
store; the driver's commands call it first, before Ray starts, so trial processes find the store ready):
under an exclusive flock beside the file (`<file>.lock`, released by the OS if the process dies) it

- creates a new store (MLflow's own creation, now by one process at a time);
- upgrades a store at an older schema revision with `mlflow db upgrade`, after copying it aside as
  `<file>.before-<revision>` (the last copy only is kept), and says so in one line;
- refuses a store that a migration left half-made (a leftover `_alembic_tmp_*` table) or that is at a
  revision the installed MLflow does not know (a newer MLflow wrote it), with one line: the file, what is
  wrong and the fix.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Callable, Iterator

from trainables.config import ConfigError

PREFIX = "sqlite:///"


@contextlib.contextmanager
def store_lock(path: Path) -> Iterator[None]:
    """The store's exclusive lock: a flock on `<file>.lock` (the OS drops it when the process dies)."""
    with open(path.with_name(path.name + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def schema_state(path: Path) -> tuple[list[str], str | None]:
    """The store's table names and its alembic revision (None: none stamped), read with sqlite3 alone."""
    if not path.exists() or path.stat().st_size == 0:
        return [], None
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        revision = (db.execute("SELECT version_num FROM alembic_version").fetchone() or [None])[0] \
            if "alembic_version" in tables else None
    return tables, revision


@functools.lru_cache(maxsize=1)
def _revisions() -> tuple[str, frozenset[str]]:
    """The installed MLflow's head schema revision and every revision it knows."""
    from alembic.script import ScriptDirectory
    from mlflow.store.db.utils import _get_alembic_config

    script = ScriptDirectory.from_config(_get_alembic_config(""))
    return script.get_current_head(), frozenset(r.revision for r in script.walk_revisions())


def backup_path(path: Path, revision: str) -> Path:
    return path.with_name(f"{path.name}.before-{revision}")


def _say(line: str) -> None:
    print(f"imlgcn: {line}", file=sys.stderr, flush=True)


def check(uri: str) -> None:
    """Preflight, before anything is written or Ray starts: a half-made store or one at a revision the
    installed MLflow does not know stops the command (ConfigError). A missing store is left missing."""
    path = Path(uri[len(PREFIX):]) if uri.startswith(PREFIX) else None
    if path is None or not path.exists():
        return
    with store_lock(path):
        _verify(path, *schema_state(path))


def ready(uri: str, say: Callable[[str], None] = _say) -> None:
    """Make the SQLite store at `uri` ready for MLflow (see the module docstring); other URIs are left alone."""
    if not uri.startswith(PREFIX):
        return
    path = Path(uri[len(PREFIX):])
    path.parent.mkdir(parents=True, exist_ok=True)
    with store_lock(path):
        tables, revision = schema_state(path)
        if not [t for t in tables if not t.startswith("alembic_")]:
            _create(uri)
            return
        head = _verify(path, tables, revision)
        if revision != head:
            _upgrade(uri, path, revision, head, sorted(path.parent.glob(f"{path.name}.before-*")), say)


def _verify(path: Path, tables: list[str], revision: str | None) -> str | None:
    """ConfigError for a half-made store or an unknown revision; else the installed MLflow's head revision."""
    from mlflow import __version__ as mlflow_version

    if not [t for t in tables if not t.startswith("alembic_")]:
        return None  # empty: MLflow creates it
    leftovers = sorted(t for t in tables if t.startswith("_alembic_tmp_"))
    copies = sorted(path.parent.glob(f"{path.name}.before-*"))
    restore = (f"restore the copy kept before its last upgrade (cp {copies[-1]} {path})" if copies else
               "restore it from a backup")
    if leftovers:
        raise ConfigError(f"MLflow store {path} is half-migrated (leftover table {', '.join(leftovers)} at schema "
                          f"revision {revision}): {restore}, or use another --tracking-uri")
    if revision is None:
        raise ConfigError(f"MLflow store {path} has MLflow tables but no schema revision (its creation was "
                          f"interrupted): {restore}, delete it if it holds no runs, or use another --tracking-uri")
    head, known = _revisions()
    if revision not in known:
        raise ConfigError(f"MLflow store {path} is at schema revision {revision}, which MLflow {mlflow_version} "
                          "does not know (a newer MLflow wrote it): install the MLflow that wrote it (pip install "
                          "-c requirements-lock.txt -e .), or use another --tracking-uri")
    return head


def _create(uri: str) -> None:
    """MLflow's own creation of a new store (all tables, stamped at the head revision), by this process only."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=uri).search_experiments(max_results=1)


def _upgrade(uri: str, path: Path, revision: str, head: str, copies: list[Path], say: Callable[[str], None]) -> None:
    """Copy the store aside (SQLite's online backup: a consistent copy), drop older copies, then upgrade."""
    copy = backup_path(path, revision)
    with contextlib.closing(sqlite3.connect(path)) as source, contextlib.closing(sqlite3.connect(copy)) as target:
        source.backup(target)
    for old in copies:
        if old != copy:
            old.unlink(missing_ok=True)
    say(f"MLflow store {path}: upgrading its schema from revision {revision} to {head} (a copy of it before the "
        f"upgrade: {copy})")
    done = subprocess.run([sys.executable, "-m", "mlflow", "db", "upgrade", uri], capture_output=True, text=True)
    if done.returncode != 0:
        cause = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ConfigError(f"MLflow store {path}: `mlflow db upgrade` failed ({cause}): restore the copy (cp {copy} "
                          f"{path}) and upgrade it with the MLflow that made it")
