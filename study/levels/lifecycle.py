"""`imlgcn study run | resume | extend`: a study's life cycle on the driver.

run: create the study (study/levels/create.py: validate and prepare the data, create the MLflow experiment
+ parent run and the study record), then train stage 1 and the same-budget baseline once and let Tune run
the trials (each planned Tune run by study/levels/level_runs.py). resume: restore the last Tune run
(searcher state included). extend: a new Tune run over the same Optuna journal. Each ends by closing
leftovers (runs of killed attempts, Optuna trials stuck RUNNING) and applying keep_checkpoints.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from study.driver.console import verbose
from study.driver.mlflow_store import resolve_tracking_uri
from study.driver.preflight import check_ray_address, check_tracking_uri, redact
from study.driver.record import StudyError, StudyRecord, driver_lock, load_record
from study.levels.create import plan_runs
from study.levels.level_runs import run_level
from trainables.config import ConfigError, TrialConfig
from trainables.trial.mlflow_runs import FINISHED, KILLED, RUNNING, store

Progress = Callable[[str], None]


def run_trials(record: StudyRecord, address: str | None, progress: Progress, tracking_uri: str | None = None) -> None:
    """The references once, then every Tune run of the record not done yet, in order (each restored when
    it saved state before), under the driver lock. A `tracking_uri` other than the record's is a moved
    MLflow store (see move_tracking_uri)."""
    with driver_lock(record):
        move_tracking_uri(record, tracking_uri, progress)
        _run_trials(record, address, progress)


def _run_trials(record: StudyRecord, address: str | None, progress: Progress) -> None:
    from study.driver.ray_session import (check_gpus, cluster_gpus, needs_state_api, node_cpus, start_ray, stop_ray,
                                          worker_slots)
    from study.driver import private_members
    from study.levels.references import ensure_references

    check_tracking_uri(record.tracking_uri)
    check_ray_address(address)
    private_members.check()  # a renamed Optuna/Ray internal: one line now, not a failure inside the sweep
    config = TrialConfig(**record.base_config)
    store(record.tracking_uri).reopen(record.parent_run_id)
    progress(start_ray(address, worker_logs=verbose(), state_api=needs_state_api([config])))
    try:
        check_gpus(config.use_gpu, config.num_workers)
        slots = worker_slots(config.cpus_per_worker or 1)  # whole workers the nodes can hold at once
        if not record.max_concurrent:
            record.max_concurrent = max(1, slots // config.num_workers)
            if config.use_gpu:
                record.max_concurrent = min(record.max_concurrent, max(1, cluster_gpus() // config.num_workers))
        cpus = config.worker_cpus(node_cpus(), record.max_concurrent)
        ensure_references(record, node_cpus(), progress)  # alone, before any trial, on every CPU
        for run_name, run in record.tune_runs.items():
            if not run["done"]:
                run_level(record, run_name, run, config, cpus, worker_slots(1), progress)
        record.status = "finished"
        record.save()
        _prune(record, progress)
    finally:
        close_leftovers(record)
        stop_ray()


def _prune(record: StudyRecord, progress: Progress) -> None:
    """keep_checkpoints=front: delete the saved models of trials off the Pareto front."""
    from study.reports.export import prune_models
    from study.reports.report import study_trials

    trials = study_trials(record)
    if not trials.empty:
        prune_models(record, trials, progress)


def close_leftovers(record: StudyRecord) -> None:
    """Mark trial runs of killed attempts KILLED (a resumed trial reopens its run) and, once the study
    has finished, Optuna trials stuck RUNNING as FAIL (they would bias the sampler)."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    runs = store(record.tracking_uri)
    for run in runs.search(record.experiment_id, f"attributes.status = '{RUNNING}'"):
        if run.info.run_id != record.parent_run_id:
            runs.close(run.info.run_id, KILLED)
    runs.close(record.parent_run_id, FINISHED if record.status == "finished" else KILLED)
    if record.status == "finished" and Path(record.optuna_journal).exists():  # resumed trials still tell theirs
        from study.levels.tuner import LEVELS, optuna_study_name

        storage = optuna.storages.JournalStorage(JournalFileBackend(record.optuna_journal))
        names = {summary.study_name for summary in optuna.get_all_study_summaries(storage)}
        for name in (optuna_study_name(record, level) for level in LEVELS):
            if name in names:
                study = optuna.load_study(study_name=name, storage=storage)
                for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
                    storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def move_tracking_uri(record: StudyRecord, tracking_uri: str | None, progress: Progress) -> None:
    """`--tracking-uri` on resume/extend: the study's MLflow store moved (a new server address for the same
    store). The new URI must hold the study's experiment; from then on every trial logs there."""
    if not tracking_uri:
        return
    uri = resolve_tracking_uri(tracking_uri)
    if uri == record.tracking_uri:
        return
    check_tracking_uri(uri)
    if store(uri).experiment_name(record.experiment_id) != record.name:
        raise StudyError(f"--tracking-uri {redact(uri)} does not hold study {record.name!r} (experiment "
                         f"{record.experiment_id}): pass the address of the store the study logs to, "
                         f"now {redact(record.tracking_uri)}")
    progress(f"study {record.name}: MLflow store moved from {redact(record.tracking_uri)} to {redact(uri)}")
    record.tracking_uri = uri
    record.save()


def resume_study(name: str, storage: str, address: str | None, progress: Progress,
                 tracking_uri: str | None = None) -> StudyRecord:
    record = load_record(storage, name)
    if record.status == "finished":
        raise ConfigError(f"study {name!r} is finished: add trials with `imlgcn study extend {name} --num-samples K`")
    run_trials(record, address, progress, tracking_uri=tracking_uri)
    return record


def extend_study(name: str, storage: str, num_samples: int, address: str | None, progress: Progress,
                 tracking_uri: str | None = None, screen: int = 0, sampler: str = "auto") -> StudyRecord:
    """More trials: screen `screen` more configurations (if asked), then fine-tune `num_samples` promoted
    from everything screened and not fine-tuned yet (sampled by Optuna when the study never screened)."""
    record = load_record(storage, name)
    if record.status != "finished":
        raise ConfigError(f"study {name!r} did not finish: run `imlgcn study resume {name}` first")
    if num_samples < 1 or screen < 0:
        raise ConfigError(f"--num-samples {num_samples} must be at least 1 and --screen {screen} not negative")
    plan_runs(record, screen, num_samples, sampler)
    run_trials(record, address, progress, tracking_uri=tracking_uri)
    return record
