"""A study's record on disk, `<storage>/<name>/study.json`, and the folder layout it owns.

Everything a resume or an extend needs (the base config, the space, the MLflow ids, the Tune runs)
lives in that one JSON file, written atomically, so a driver killed at any point leaves a study that
`imlgcn study resume` can pick up. The layout of the study's folder is defined here once, as properties.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from trainables.size_measures import OPTIONS
from trainables.trial.run_context import RunContext, screened_runs_dir

RECORD_FILE = "study.json"
STAGE1_FOLDER = "stage1"  # in the storage root: shared by every study of that storage


class StudyInterrupted(RuntimeError):
    """Tune stopped before every asked trial ended (Ctrl+C, SIGTERM): the study can be resumed."""


class StudyError(ValueError):
    """A study name, folder or state is wrong; the message says which command to use instead."""


# --size -> the size metric a study minimises (trainables.size_measures; trainables.models.sizes measures them all
# for every run)
SIZES = OPTIONS


@dataclass
class StudyRecord:
    """A study's persistent record."""

    name: str
    storage: str  # absolute path of the storage root
    base_config: dict  # the flat TrialConfig every trial starts from
    space: str
    objective: str  # multi (mAP up, the size down) | map (mAP only, ASHA)
    num_samples: int  # fine-tuning trials asked so far (run + extends)
    max_concurrent: int
    num_classes: int
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    split_index: str = ""  # the data set's split index, written when the study was created
    screen: int = 0  # configurations screened on cached features so far (level 1)
    eta: int = 3  # level 2's early stopping: keep the top 1/eta at each rung (0 = off)
    # Tune runs in the order they run: name -> {"level": screen | finetune, "trials": n, "done": bool,
    # "points": the promoted configurations a finetune run starts from}
    tune_runs: dict[str, dict] = field(default_factory=dict)
    status: str = "running"  # running | finished
    size: str = "params"  # the second objective (--size, a key of SIZES); records from before --size: params

    @property
    def size_metric(self) -> str:
        """The metric the study minimises beside maximising mAP (n_params_inference for --size inference_params)."""
        return SIZES[self.size]

    @property
    def folder(self) -> Path:
        return Path(self.storage) / self.name

    @property
    def stage1_dir(self) -> Path:
        """The stage-1 cache (pretrained direct models and features), shared by the storage's studies."""
        return Path(self.storage) / STAGE1_FOLDER

    @property
    def train_dir(self) -> Path:
        """Ray Train runs: stage 1's and each fine-tuning trial's per-epoch checkpoints."""
        return self.folder / "train"

    @property
    def tune_dir(self) -> Path:
        """Ray Tune's experiment folders, one per Tune run (run, extend-1, ...)."""
        return self.folder / "tune"

    @property
    def models_dir(self) -> Path:
        """Final models of the trials (one folder per trial id), kept as keep_checkpoints says."""
        return self.folder / "models"

    @property
    def report_dir(self) -> Path:
        return self.folder / "report"

    @property
    def runs_dir(self) -> Path:
        """`<trial_id>.run` files: the MLflow run id of each trial (see trainables.trial.mlflow_runs)."""
        return self.folder / "mlflow_runs"

    def screened_markers(self) -> dict[str, str] | None:
        """Each screening Tune run -> the folder its trials mark their runs in, when every one of them marks
        (planned by this version: `marked`; or not started yet); None for a study screened by an earlier
        version, read from MLflow alone."""
        screening = {name: run for name, run in self.tune_runs.items() if run.get("level") == "screen"}
        if not all(run.get("marked") or not (run.get("done") or run.get("attempts")) for run in screening.values()):
            return None
        return {name: screened_runs_dir(str(self.runs_dir), name) for name in screening}

    @property
    def optuna_journal(self) -> str:
        return str(self.folder / "optuna.journal")

    def level_config(self, level: str) -> dict[str, Any]:
        """The constants of a level's trials: screening trains the head alone and saves no model."""
        if level == "screen":
            return {**self.base_config, "finetune_backbone": False, "keep_checkpoints": "none"}
        return dict(self.base_config)

    def context(self, cpus_per_worker: int) -> RunContext:
        """What every trial of this study needs from the driver."""
        return RunContext(tracking_uri=self.tracking_uri, experiment_id=self.experiment_id,
                          stage1_dir=str(self.stage1_dir), train_storage=str(self.train_dir),
                          models_dir=str(self.models_dir), cpus_per_worker=cpus_per_worker,
                          runs_dir=str(self.runs_dir), parent_run_id=self.parent_run_id,
                          split_index=self.split_index, size_metric=self.size_metric)

    def save(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{RECORD_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(asdict(self), indent=1))
        os.replace(tmp, self.folder / RECORD_FILE)


def check_name(name: str, what: str = "study") -> str:
    """A study's (or comparison's) name is one folder of the storage: not a path, not hidden (`study list`
    skips hidden folders), and not the stage-1 cache all studies of the storage share."""
    if not name.strip() or "/" in name or "\0" in name or name.startswith(".") or name == STAGE1_FOLDER:
        why = ("is the storage's shared stage-1 cache" if name == STAGE1_FOLDER
               else "is not a plain folder name (empty, a path, or starting with '.')")
        raise StudyError(f"{what} name {name!r} {why}: choose a name of letters, digits, '-' and '_', e.g. demo-2")
    return name


def study_folder(storage: str | Path, name: str) -> Path:
    return Path(storage).absolute() / check_name(name)


def load_record(storage: str | Path, name: str) -> StudyRecord:
    """The saved study `name`; a missing one is a one-line StudyError pointing to `study list`."""
    path = study_folder(storage, name) / RECORD_FILE
    if not path.is_file():
        raise StudyError(f"no study named {name!r} in {Path(storage).absolute()}: "
                         "see `imlgcn study list --storage DIR`, or start it with `imlgcn study run`")
    try:
        values = json.loads(path.read_text())
        if not isinstance(values, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as error:  # json.JSONDecodeError is a ValueError
        raise StudyError(f"the study record {path} cannot be read ({error}): restore it (e.g. from a backup), "
                         f"or remove the folder {path.parent} to start study {name!r} again") from None
    values["tune_runs"] = {name: run if isinstance(run, dict) else {"level": "finetune", "trials": run, "done": False}
                           for name, run in values.get("tune_runs", {}).items()}  # records of one-level studies
    return StudyRecord(**values)


def list_records(storage: str | Path) -> list[StudyRecord]:
    root = Path(storage).absolute()
    if root.exists() and not root.is_dir():
        raise StudyError(f"--storage {root} is a file, not a folder: pass the folder that holds the studies")
    if not root.is_dir():
        return []
    return [load_record(root, p.parent.name) for p in sorted(root.glob(f"*/{RECORD_FILE}"))]


@contextlib.contextmanager
def driver_lock(record: StudyRecord):
    """Held while a driver runs the study, so a second `run`/`resume`/`extend` of it is refused.

    An flock is released by the OS when its process dies, even by SIGKILL, so `imlgcn study resume`
    after a crash is never blocked by a stale lock. (On NFS, flock may only be local to one machine.)
    """
    import fcntl

    record.folder.mkdir(parents=True, exist_ok=True)
    handle = open(record.folder / "driver.lock", "a+")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise StudyError(f"study {record.name!r} is being run by another driver ({holder}): wait for it to "
                             "end, or stop it first") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}")
        handle.flush()
        yield
    finally:
        handle.close()
