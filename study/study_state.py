"""What a study is on disk: `<storage>/<name>/study.json` plus the folders its parts share.

Everything a resume or an extend needs (the base config, the space, the MLflow ids, the Tune runs)
lives in that one JSON file, written atomically, so a driver killed at any point leaves a study that
`imlgcn study resume` can pick up.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_FILE = "study.json"


class StudyInterrupted(RuntimeError):
    """Tune stopped before every asked trial ended (Ctrl+C, SIGTERM): the study can be resumed."""


class StudyError(ValueError):
    """A study name or folder is wrong; the message says which command to use instead."""


@dataclass
class StudyState:
    """A study's persistent record."""

    name: str
    storage: str  # absolute path of the storage root
    base_config: dict  # the flat TrialConfig every trial starts from
    space: str
    objective: str  # multi (mAP up, n_params down) | map (mAP only, ASHA)
    num_samples: int  # trials asked so far (run + extends)
    max_concurrent: int
    num_classes: int
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    tune_runs: dict[str, int] = field(default_factory=dict)  # Tune run name -> trials it asks, in order
    status: str = "running"  # running | finished

    @property
    def folder(self) -> Path:
        return Path(self.storage) / self.name

    @property
    def models_dir(self) -> Path:
        """Final models of the trials (one folder per trial id), kept as keep_checkpoints says."""
        return self.folder / "models"

    @property
    def optuna_journal(self) -> str:
        return str(self.folder / "optuna.journal")

    def context(self, cpus_per_worker: int) -> dict:
        """The flat facts a trial needs (passed to every trial with tune.with_parameters)."""
        return {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id,
                "parent_run_id": self.parent_run_id, "runs_dir": str(self.folder / "mlflow_runs"),
                "cache_dir": str(Path(self.storage) / "stage1"), "train_storage": str(self.folder / "train"),
                "models_dir": str(self.models_dir),
                "cpus_per_worker": cpus_per_worker}

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{STATE_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, self.folder / STATE_FILE)


def study_folder(storage: str | Path, name: str) -> Path:
    return Path(storage).absolute() / name


def load_state(storage: str | Path, name: str) -> StudyState:
    """The saved study `name`; a missing one is a one-line ValueError pointing to `study list`."""
    path = study_folder(storage, name) / STATE_FILE
    if not path.is_file():
        raise StudyError(f"no study named {name!r} in {Path(storage).absolute()}: "
                         "see `imlgcn study list --storage DIR`, or start it with `imlgcn study run`")
    return StudyState(**json.loads(path.read_text()))


def list_states(storage: str | Path) -> list[StudyState]:
    root = Path(storage).absolute()
    if not root.is_dir():
        return []
    return [load_state(root, p.parent.name) for p in sorted(root.glob(f"*/{STATE_FILE}"))]


@contextlib.contextmanager
def driver_lock(state: StudyState):
    """Held while a driver runs the study, so a second `run`/`resume`/`extend` of it is refused.

    An flock is released by the OS when its process dies, even by SIGKILL, so `imlgcn study resume`
    after a crash is never blocked by a stale lock. (On NFS, flock may only be local to one machine.)
    """
    import fcntl

    state.folder.mkdir(parents=True, exist_ok=True)
    handle = open(state.folder / "driver.lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StudyError(f"study {state.name!r} is being run by another driver ({holder}): wait for it to "
                             "end, or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        handle.close()
