"""The private members of Optuna, Ray and MLflow that the study relies on, checked on the installed versions.

study/levels/search.py extends Ray's OptunaSearch and Optuna's JournalStorage through members that are not their
public API (study/levels/lifecycle.py reads one more; trainables/trial/mlflow_schema.py reads MLflow's schema revisions):
a release may rename them without notice, and the study would then fail inside a sweep. `missing()` builds
the real objects on a throwaway journal and names each member they lack, so an update fails in one line, in
a test and before a study starts.
"""

from __future__ import annotations

import tempfile
from importlib.metadata import version
from pathlib import Path

# (package, object, member path, who uses it)
MEMBERS = (
    ("optuna", "JournalStorage", "_thread_lock", "search.SweepJournalStorage"),
    ("optuna", "JournalStorage", "_sync_with_backend", "search.SweepJournalStorage"),
    ("optuna", "JournalStorage", "_replay_result._trials", "search.SweepJournalStorage"),
    ("optuna", "JournalStorage", "_replay_result._study_id_to_trial_ids", "search.SweepJournalStorage"),
    ("optuna", "Study", "_storage", "search.StudySearch._finished_in_storage"),
    ("optuna", "Trial", "_trial_id", "search.StudySearch._finished_in_storage"),
    ("optuna", "FrozenTrial", "_trial_id", "lifecycle.close_leftovers"),
    ("ray", "OptunaSearch", "_setup_study", "search.StudySearch"),
    ("ray", "OptunaSearch", "_ot_study", "search.StudySearch"),
    ("ray", "OptunaSearch", "_ot_trials", "search.StudySearch"),
    ("ray", "OptunaSearch", "_completed_trials", "search.StudySearch"),
    ("ray", "OptunaSearch", "_study_name", "search.StudySearch"),
    ("mlflow", "mlflow.store.db.utils", "_get_alembic_config", "trainables.trial.mlflow_schema"),
)


def _probe_space(trial) -> dict:
    return {"x": trial.suggest_float("x", 0.0, 1.0)}


def _objects(folder: Path) -> dict[str, object]:
    """One real object of each kind in MEMBERS: a searcher that asked one trial on a journal storage."""
    import mlflow.store.db.utils
    import optuna
    from optuna.storages.journal import JournalFileBackend
    from ray.tune.search.optuna import OptunaSearch

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(folder / "journal.log")))
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "A new study created" line for the probe
    try:
        searcher = OptunaSearch(_probe_space, metric=["a", "b"], mode=["max", "min"], storage=storage,
                                study_name="probe", sampler=optuna.samplers.RandomSampler(seed=0))
        searcher.suggest("probe-trial")
    finally:
        optuna.logging.set_verbosity(verbosity)
    study = getattr(searcher, "_ot_study", None)
    trials = getattr(searcher, "_ot_trials", {})
    return {"JournalStorage": storage, "OptunaSearch": searcher, "Study": study,
            "Trial": next(iter(trials.values()), None) if isinstance(trials, dict) else None,
            "FrozenTrial": study.get_trials(deepcopy=False)[0] if study is not None else None,
            "mlflow.store.db.utils": mlflow.store.db.utils}


def _has(obj: object, path: str) -> bool:
    for name in path.split("."):
        if obj is None or not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


def missing() -> list[str]:
    """`Package X.Y Object.member` for each member in MEMBERS that the installed versions lack."""
    import warnings

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature warnings about the probe itself
        objects = _objects(Path(folder))
    return [f"{package} {version(package)} {kind}.{path} (used by {user})"
            for package, kind, path, user in MEMBERS if not _has(objects[kind], path)]


def check() -> None:
    """Stop a study before Ray starts when an installed Optuna, Ray or MLflow lacks a member the study uses."""
    from trainables.config import ConfigError

    lacking = missing()
    if lacking:
        raise ConfigError(f"the installed libraries lack what the study uses: {'; '.join(lacking)}: install the "
                          "tested versions (pip install -c requirements-lock.txt -e .)")
