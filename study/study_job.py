"""`imlgcn study run | resume | extend`: a study's life cycle on the driver.

run: validate and prepare the data, create the MLflow experiment + parent run and the study record,
train stage 1 once, then let Tune run the trials. resume: restore the last Tune run (searcher state
included). extend: a new Tune run over the same Optuna journal. Each ends by closing leftovers
(runs of killed attempts, Optuna trials stuck RUNNING) and writing the Pareto report.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Callable

from study.preflight import check_ray_address, check_tracking_uri, check_writable
from study.study_state import StudyInterrupted, StudyState, driver_lock, load_state, study_folder
from study.tracking import experiment_id, resolve_tracking_uri
from trainables.config import ConfigError, TrialConfig
from trainables.trial import runs_in_process

Progress = Callable[[str], None]


def create_study(name: str, config: TrialConfig, space: str, objective: str, num_samples: int,
                 max_concurrent: int, storage: str, tracking_uri: str | None, progress: Progress,
                 address: str | None = None) -> StudyState:
    """Check everything, then write the study record and open its MLflow parent run."""
    from search_spaces import get_space

    try:
        get_space(space)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if num_samples < 1:
        raise ConfigError(f"--num-samples {num_samples} must be at least 1")
    folder = study_folder(check_writable(storage), name)
    try:
        folder.mkdir()  # atomic: of two drivers starting the same name at once, one gets it
    except FileExistsError:
        raise ConfigError(f"study {name!r} already exists in {Path(storage).absolute()}: "
                          f"continue it with `imlgcn study resume {name}` or add trials with "
                          f"`imlgcn study extend {name} --num-samples K`") from None
    try:
        return _new_state(name, config, space, objective, num_samples, max_concurrent, storage, tracking_uri,
                          address, progress)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-written: the name is free again
        raise


def _new_state(name: str, config: TrialConfig, space: str, objective: str, num_samples: int, max_concurrent: int,
               storage: str, tracking_uri: str | None, address: str | None, progress: Progress) -> StudyState:
    from mlflow.tracking import MlflowClient

    from study.train_job import prepare_data

    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    check_ray_address(address)
    config, classes = prepare_data(config, progress)
    if config.use_gpu:  # needs Ray up: start it now (run_trials keeps it) so no record is written for nothing
        from study.ray_session import check_gpus, start_ray, stop_ray

        progress(start_ray(address, extra_cpus=_extra_cpus(config, address)))
        try:
            check_gpus(config.use_gpu, config.num_workers)
        except ConfigError:
            stop_ray()
            raise
    client = MlflowClient(tracking_uri=uri)
    exp = experiment_id(client, name, uri)
    parent = client.create_run(exp, tags={"stage": "study", "space": space, "objective": objective},
                               run_name=name).info.run_id
    state = StudyState(name=name, storage=str(Path(storage).absolute()), base_config=config.to_dict(),
                       space=space, objective=objective, num_samples=num_samples, max_concurrent=max_concurrent,
                       num_classes=len(classes), tracking_uri=uri, experiment_id=exp, parent_run_id=parent)
    state.save()
    return state


def _extra_cpus(config: TrialConfig, address: str | None) -> int:
    """A trial that launches a TorchTrainer holds 0.01 CPU while its workers hold whole CPUs: a local
    Ray gets one extra logical CPU for those waiting trial processes, or 2 trials need 2.02 CPUs."""
    return 0 if address or runs_in_process(config) else 1


def run_trials(state: StudyState, run_name: str, num_samples: int, address: str | None,
               progress: Progress, restore: bool = False) -> None:
    """Stage 1 once, then the Tune run `run_name` (restored when asked and possible), under the driver lock."""
    with driver_lock(state):
        _run_trials(state, run_name, num_samples, address, progress, restore)


def _run_trials(state: StudyState, run_name: str, num_samples: int, address: str | None,
                progress: Progress, restore: bool) -> None:
    from mlflow.tracking import MlflowClient

    from study.pretrain_job import ensure_stage1
    from study.ray_session import check_gpus, cluster_cpus, cluster_gpus, start_ray, stop_ray
    from study.tune import new_tuner, restored_tuner

    check_tracking_uri(state.tracking_uri)
    check_ray_address(address)
    config = TrialConfig(**state.base_config)
    client = MlflowClient(tracking_uri=state.tracking_uri)
    client.update_run(state.parent_run_id, status="RUNNING")
    extra = _extra_cpus(config, address)
    progress(start_ray(address, extra_cpus=extra))
    try:
        check_gpus(config.use_gpu, config.num_workers)
        cpus = config.cpus_per_worker or 1
        if not state.max_concurrent:
            state.max_concurrent = max(1, (cluster_cpus() - extra) // (cpus * config.num_workers))
            if config.use_gpu:
                state.max_concurrent = min(state.max_concurrent, max(1, cluster_gpus() // config.num_workers))
        ensure_stage1(state, config, cpus, progress)
        tuner = restored_tuner(state, run_name, cpus) if restore else None
        if tuner is None:
            state.tune_runs[run_name] = num_samples
            state.save()
            tuner = new_tuner(state, run_name, num_samples, cpus)
        progress(f"study {state.name}: {num_samples} trials, up to {state.max_concurrent} at once")
        with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the Pareto table
            results = tuner.fit()
        ended = results.num_terminated + results.num_errors
        if ended < num_samples:  # Tune returns normally after Ctrl+C: the study is not finished
            raise StudyInterrupted(f"study {state.name!r} stopped after {ended} of {num_samples} trials: "
                                   f"continue it with `imlgcn study resume {state.name}`")
        state.status = "finished"
        state.save()
        _prune(state, progress)
    finally:
        close_leftovers(state)
        stop_ray()


def _prune(state: StudyState, progress: Progress) -> None:
    """keep_checkpoints=front: delete the saved models of trials off the Pareto front."""
    from mlflow.tracking import MlflowClient

    from study.export import prune_models
    from study.report import trial_table

    trials = trial_table(MlflowClient(tracking_uri=state.tracking_uri), state.name)
    if not trials.empty:
        prune_models(state, trials, progress)


def close_leftovers(state: StudyState) -> None:
    """Mark trial runs of killed attempts KILLED (a resumed trial reopens its run) and, once the study
    has finished, Optuna trials stuck RUNNING as FAIL (they would bias the sampler)."""
    import optuna
    from mlflow.tracking import MlflowClient
    from optuna.storages.journal import JournalFileBackend

    client = MlflowClient(tracking_uri=state.tracking_uri)
    for run in client.search_runs([state.experiment_id], "attributes.status = 'RUNNING'"):
        if run.info.run_id != state.parent_run_id:
            client.set_terminated(run.info.run_id, "KILLED")
    client.set_terminated(state.parent_run_id, "FINISHED" if state.status == "finished" else "KILLED")
    if state.status == "finished" and Path(state.optuna_journal).exists():  # resumed trials still tell theirs
        storage = optuna.storages.JournalStorage(JournalFileBackend(state.optuna_journal))
        study = optuna.load_study(study_name=state.name, storage=storage)
        for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)


def resume_study(name: str, storage: str, address: str | None, progress: Progress) -> StudyState:
    state = load_state(storage, name)
    if state.status == "finished":
        raise ConfigError(f"study {name!r} is finished: add trials with `imlgcn study extend {name} --num-samples K`")
    run_name, asked = list(state.tune_runs.items())[-1] if state.tune_runs else ("tune", state.num_samples)
    run_trials(state, run_name, asked, address, progress, restore=True)
    return state


def extend_study(name: str, storage: str, num_samples: int, address: str | None, progress: Progress) -> StudyState:
    state = load_state(storage, name)
    if state.status != "finished":
        raise ConfigError(f"study {name!r} did not finish: run `imlgcn study resume {name}` first")
    if num_samples < 1:
        raise ConfigError(f"--num-samples {num_samples} must be at least 1")
    state.num_samples += num_samples
    state.status = "running"
    run_name = f"extend-{len(state.tune_runs)}"
    run_trials(state, run_name, num_samples, address, progress)
    return state

