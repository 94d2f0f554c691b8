"""Each planned Tune run of a study, on the driver: a screening run (as Tune runs of at most SCREEN_CHUNK
trials, counted in MLflow when resumed) or a fine-tuning run (restored when it saved state, else new,
starting from the configurations `promote` takes from screening). study/levels/lifecycle.py runs them
in order.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable

from study.driver.record import StudyInterrupted, StudyRecord
from trainables.config import ConfigError, TrialConfig
from trainables.trial.mlflow_runs import store
from trainables.trial.run_context import clear_staging, screened_runs_dir

Progress = Callable[[str], None]


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


def run_level(record: StudyRecord, run_name: str, run: dict, config: TrialConfig, cpus: int, cpu_slots: int,
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
