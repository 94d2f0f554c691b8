"""A new study (`imlgcn study run`, before its trials): validate and prepare the data, create the MLflow
experiment + parent run and the study record, and plan its Tune runs (`plan_runs`, which `extend` uses
too). study/levels/lifecycle.py then runs them.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Callable

from study.driver.console import verbose
from study.driver.mlflow_store import resolve_tracking_uri
from study.driver.preflight import check_ray_address, check_tracking_uri, check_writable, prepare_plane
from study.driver.record import StudyError, StudyRecord, load_record, study_folder
from trainables.config import ConfigError, TrialConfig
from trainables.trial.mlflow_runs import store

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
    check_counts(num_samples, screen, eta)
    check_max_concurrent(max_concurrent)
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
        raise ConfigError(exists_message(storage, name)) from None
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


def check_counts(num_samples: int, screen: int, eta: int) -> None:
    """The study's trial counts and early stopping, checked before anything (a dry run checks them too)."""
    wrong = [text for bad, text in ((num_samples < 1, f"--num-samples {num_samples}: use at least 1"),
                                    (screen < 0, f"--screen {screen}: use 0 (no screening) or more"),
                                    (eta < 0 or eta == 1, f"--eta {eta}: use 0 (no early stopping) or at least 2"))
             if bad]
    if wrong:
        raise ConfigError("; ".join(wrong))


def check_max_concurrent(max_concurrent: int) -> None:
    """--max-concurrent of a study or a comparison (a dry run checks it too): 0 means as many as fit."""
    if max_concurrent < 0:
        raise ConfigError(f"--max-concurrent {max_concurrent}: use 0 (as many as the CPUs allow) or more")


def exists_message(storage: str, name: str) -> str:
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
        from study.driver.ray_session import check_gpus, needs_state_api, start_ray, stop_ray

        progress(start_ray(address, worker_logs=verbose(), state_api=needs_state_api([config])))
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
