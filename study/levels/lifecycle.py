"""`imlgcn study run | resume | extend`: a study's life cycle on the driver.

run: validate and prepare the data, create the MLflow experiment + parent run and the study record,
train stage 1 and the same-budget baseline once, then let Tune run the trials. resume: restore the last Tune run (searcher state
included). extend: a new Tune run over the same Optuna journal. Each ends by closing leftovers
(runs of killed attempts, Optuna trials stuck RUNNING) and applying keep_checkpoints.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from pathlib import Path
from typing import Callable

from study.driver.console import verbose
from study.driver.mlflow_store import resolve_tracking_uri
from study.driver.preflight import check_ray_address, check_tracking_uri, check_writable, prepare_plane, redact
from study.driver.record import StudyError, StudyInterrupted, StudyRecord, driver_lock, load_record, study_folder
from trainables.config import ConfigError, TrialConfig
from trainables.trial.mlflow_runs import FINISHED, KILLED, RUNNING, store
from trainables.trial.run_context import clear_staging, screened_runs_dir

Progress = Callable[[str], None]


def create_study(name: str, config: TrialConfig, space: str, objective: str, size: str, num_samples: int,
                 max_concurrent: int, storage: str, tracking_uri: str | None, progress: Progress,
                 address: str | None = None, screen: int = 0, eta: int = 3, sampler: str = "auto") -> StudyRecord:
    """Check everything, then write the study record and open its MLflow parent run."""
    from search_spaces import get_space

    try:
        get_space(space)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if num_samples < 1 or screen < 0 or eta < 0 or eta == 1:
        raise ConfigError(f"--num-samples {num_samples} must be at least 1, --screen {screen} not negative and "
                          f"--eta {eta} 0 (no early stopping) or at least 2")
    if config.direct_only and screen:
        progress("the base config is the direct model only (embedding=none, epochs=0): there is no head to screen "
                 f"or search, so the study skips screening (--screen {screen}) and each trial is the stage-1 model")
        screen = 0
    root = check_writable(storage)
    folder = study_folder(root, name)
    created_root = not root.exists()
    root.mkdir(parents=True, exist_ok=True)
    try:
        folder.mkdir()  # atomic: of two drivers starting the same name at once, one gets it
    except FileExistsError:
        raise ConfigError(_exists_message(storage, name)) from None
    try:
        record = _new_record(name, config, space, objective, max_concurrent, storage, tracking_uri, address,
                             progress, eta, size)
        plan_runs(record, screen, num_samples, sampler)
        record.save()
        return record
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing half-written: the name is free again
        if created_root:
            with contextlib.suppress(OSError):
                root.rmdir()  # and no empty storage folder (only if nothing else is in it)
        raise


def _exists_message(storage: str, name: str) -> str:
    """What to do with a name that is taken: resume a study that did not finish, extend one that did."""
    try:
        record = load_record(storage, name)
    except StudyError:  # being created right now by another driver, or not a study's folder
        return (f"study {name!r} already exists in {Path(storage).absolute()} (being created, or not a study): "
                "choose another --name")
    if record.status == "finished":
        return (f"study {name!r} already exists in {Path(storage).absolute()} and finished: add trials with "
                f"`imlgcn study extend {name} --num-samples K`, or choose another --name")
    return (f"study {name!r} already exists in {Path(storage).absolute()} and did not finish: continue it with "
            f"`imlgcn study resume {name}`, or choose another --name")


def _new_record(name: str, config: TrialConfig, space: str, objective: str, max_concurrent: int, storage: str,
                tracking_uri: str | None, address: str | None, progress: Progress, eta: int, size: str) -> StudyRecord:
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    check_ray_address(address)
    config, classes, index = prepare_plane(config, space, progress, Path(storage).absolute() / "stage1")
    # Checks that need Ray up (the cluster's GPUs; on a cluster every node's versions, in start_ray): Ray
    # starts now (run_trials keeps it), so that no record is written for nothing.
    if config.use_gpu or address:
        from study.driver.ray_session import check_gpus, start_ray, stop_ray

        progress(start_ray(address, worker_logs=verbose()))
        try:
            check_gpus(config.use_gpu, config.num_workers)
        except ConfigError:
            stop_ray()
            raise
    runs = store(uri)
    exp = runs.experiment_id(name)
    # the base config as the parent's params: a screened trial's run logs only its head and searched keys
    parent = runs.create(exp, name, {"stage": "study", "space": space, "objective": objective, "size": size},
                         params=config.to_dict())
    record = StudyRecord(name=name, storage=str(Path(storage).absolute()), base_config=config.to_dict(),
                         space=space, objective=objective, num_samples=0, max_concurrent=max_concurrent,
                         num_classes=len(classes), tracking_uri=uri, experiment_id=exp, parent_run_id=parent,
                         split_index=index, eta=eta, size=size)
    return record


def plan_runs(record: StudyRecord, screen: int, finetune: int, sampler: str = "auto") -> None:
    """Append the Tune runs of a `study run` or `extend` to the record: screening (if asked, sampled by
    `sampler`: see tuner.sampler_name), then fine-tuning. Runs are named `screen`, `finetune` and, for
    extends, `screen-N`, `finetune-N`."""
    from study.levels.tuner import sampler_name

    suffix = "" if not record.tune_runs else f"-{1 + sum(r['level'] == 'finetune' for r in record.tune_runs.values())}"
    if screen:
        record.tune_runs[f"screen{suffix}"] = {"level": "screen", "trials": screen, "done": False,
                                               "sampler": sampler_name("screen", screen, sampler)}
        record.screen += screen
    record.tune_runs[f"finetune{suffix}"] = {"level": "finetune", "trials": finetune, "done": False}
    record.num_samples += finetune
    record.status = "running"


def run_trials(record: StudyRecord, address: str | None, progress: Progress, tracking_uri: str | None = None) -> None:
    """The references once, then every Tune run of the record not done yet, in order (each restored when
    it saved state before), under the driver lock. A `tracking_uri` other than the record's is a moved
    MLflow store (see move_tracking_uri)."""
    with driver_lock(record):
        move_tracking_uri(record, tracking_uri, progress)
        _run_trials(record, address, progress)


def _run_trials(record: StudyRecord, address: str | None, progress: Progress) -> None:
    from study.driver.ray_session import check_gpus, cluster_gpus, node_cpus, start_ray, stop_ray, worker_slots
    from study.driver import private_members
    from study.levels.references import ensure_references

    check_tracking_uri(record.tracking_uri)
    check_ray_address(address)
    private_members.check()  # a renamed Optuna/Ray internal: one line now, not a failure inside the sweep
    config = TrialConfig(**record.base_config)
    store(record.tracking_uri).reopen(record.parent_run_id)
    progress(start_ray(address, worker_logs=verbose()))
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
                _run_level(record, run_name, run, config, cpus, worker_slots(1), progress)
        record.status = "finished"
        record.save()
        _prune(record, progress)
    finally:
        close_leftovers(record)
        stop_ray()


# A screening run of more configurations runs as successive Tune runs of at most this many (environment
# IMLGCN_SCREEN_CHUNK): Tune keeps every trial of a run (config, last result, running statistics of each
# reported number) until the run ends, so the driver's memory grows with the trials of one Tune run, not
# with the sweep.
SCREEN_CHUNK = 2000


def screen_chunk() -> int:
    value = os.environ.get("IMLGCN_SCREEN_CHUNK", str(SCREEN_CHUNK))
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"IMLGCN_SCREEN_CHUNK={value!r}: set a whole number of trials (at least 1), e.g. 2000")
    return int(value)


def _run_level(record: StudyRecord, run_name: str, run: dict, config: TrialConfig, cpus: int, cpu_slots: int,
               progress: Progress) -> None:
    """One planned run: screening (1 CPU per trial, as many as there are CPUs) or fine-tuning (Ray Train
    workers, record.max_concurrent at once, starting from the configurations promoted from screening)."""
    if run["level"] == "screen":
        _run_screening(record, run_name, run, cpu_slots, progress)
    else:
        _run_finetuning(record, run_name, run, config, cpus, progress)
    run["done"] = True
    record.save()


def _run_screening(record: StudyRecord, run_name: str, run: dict, cpu_slots: int, progress: Progress) -> None:
    """Screening, as Tune runs of at most SCREEN_CHUNK trials (`screen`, then `screen-r1`, `screen-r2`, ...)
    over one Optuna study, until the asked number finished.

    Screening is never restored from Tune's experiment state (saved only at a run's end). MLflow knows
    exactly which finished (each screened trial is one run, written when it ends, tagged with the planned
    run's name): a resumed screening counts them there and runs the rest as new Tune runs over the same
    Optuna study (which knows every result told before)."""
    from study.levels.tuner import new_tuner

    if not run.get("attempts"):  # a new run: its trials' markers are counted on resume
        run["marked"] = True
    done, failed = _screened(record, run_name, run), 0
    sampling = run.get("sampler", "tpe")  # planned with the run (records from before: TPE)
    if done < run["trials"]:
        progress(f"study {record.name}: {run['trials'] - done} configurations screened on cached features, up to "
                 f"{cpu_slots} at once, sampled by {'TPE' if sampling == 'tpe' else 'random search'}")
    while done + failed < run["trials"]:
        trials = min(run["trials"] - done - failed, screen_chunk())
        attempt = run.get("attempts", 0)
        run["attempts"] = attempt + 1
        record.save()
        tune_name = run_name if attempt == 0 else f"{run_name}-r{attempt}"
        tuner = new_tuner(record, tune_name, "screen", trials, 1, cpu_slots, None, run_name, sampling,
                          progress_of=(done + failed, run["trials"]))
        finished, errors = _fit(record, tuner, trials, run_name)
        done, failed = done + finished, failed + errors


def _run_finetuning(record: StudyRecord, run_name: str, run: dict, config: TrialConfig, cpus: int,
                    progress: Progress) -> None:
    """Fine-tuning: the Tune run restored when it saved state before, else a new one."""
    from study.levels.tuner import new_tuner, restored_tuner
    from trainables.trial.trainable import trains_in_trial

    tuner = restored_tuner(record, run_name, "finetune", cpus)
    if tuner is None:
        if "points" not in run and record.screen:
            run["points"] = promote(record, run["trials"])
            progress(f"study {record.name}: promoting {len(run['points'])} screened configurations to fine-tuning")
        record.save()
        tuner = new_tuner(record, run_name, "finetune", run["trials"], cpus, record.max_concurrent, run.get("points"),
                          run_name, run.get("sampler", "tpe"))
    gpu = " + 1 GPU" if config.use_gpu else ""
    where = (f" (each in its own trial process on {cpus} CPU{gpu})" if trains_in_trial(config) else
             f" (each on {config.num_workers} Ray Train workers x {cpus} CPU{gpu})")
    progress(f"study {record.name}: {run['trials']} fine-tuning trials, up to {record.max_concurrent} at once{where}")
    _fit(record, tuner, run["trials"], run_name)


def _fit(record: StudyRecord, tuner, trials: int, run_name: str) -> tuple[int, int]:
    """Run a Tune run of `trials` to its end; (trials that finished, trials that failed). Tune returns
    normally after Ctrl+C: then the study is not finished."""
    with contextlib.redirect_stdout(sys.stderr):  # stdout carries only the Pareto table
        results = tuner.fit()
    clear_staging(str(record.train_dir))
    ended = results.num_terminated + results.num_errors
    if ended < trials:
        raise StudyInterrupted(f"study {record.name!r} stopped after {ended} of {trials} trials of "
                               f"{run_name}: continue it with `imlgcn study resume {record.name}`")
    return results.num_terminated, results.num_errors


def _screened(record: StudyRecord, run_name: str, run: dict) -> int:
    """Screened trials of planned run `run_name` that finished (their MLflow runs, tagged tune_run): counted
    from the run's marker folder (RunLog.finished_trials) when the run was planned with one (`marked`),
    else by reading every run back (a study screened by an earlier version)."""
    query = f"tags.level = 'screen' and tags.tune_run = '{run_name}'"
    runs = store(record.tracking_uri)
    if run.get("marked"):
        return len(runs.finished_trials(screened_runs_dir(str(record.runs_dir), run_name), record.experiment_id, query))
    finished = runs.search(record.experiment_id, f"{query} and attributes.status = 'FINISHED'")
    return len({r.data.tags.get("trial_id") for r in finished})


def promote(record: StudyRecord, k: int) -> list[dict]:
    """The head configurations to fine-tune: k of the screened ones not fine-tuned yet, by non-dominated
    sorting on (mAP, the study's size) with the last front cut by crowding distance (a spread across sizes); by
    mAP alone for objective=map. Read from the screening level's Optuna study (exact parameter values)."""
    import numpy as np
    import optuna
    from optuna.storages.journal import JournalFileBackend

    from study.reports.pareto import select_promoted
    from study.levels.tuner import optuna_study_name

    storage = optuna.storages.JournalStorage(JournalFileBackend(record.optuna_journal))
    screened = optuna.load_study(study_name=optuna_study_name(record, "screen"), storage=storage).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    def key(params: dict) -> tuple:
        return tuple(sorted(params.items()))

    seen = {key(p) for run in record.tune_runs.values() for p in run.get("points", [])}  # fine-tuned before
    candidates = []
    for trial in screened:  # a set: a sweep screens tens of thousands
        if key(trial.params) not in seen:
            candidates.append(trial)
            seen.add(key(trial.params))
    if not candidates:
        return []
    m_ap = np.array([t.values[0] for t in candidates])
    if record.objective == "multi":
        chosen = select_promoted(m_ap, np.array([t.values[1] for t in candidates]), k)
    else:
        chosen = np.argsort(-m_ap, kind="stable")[:k]
    return [dict(candidates[i].params) for i in chosen]


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
