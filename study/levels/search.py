"""The study's searcher: Ray's OptunaSearch, plus what makes its trials findable and its stops honest.

- The Optuna study names its objectives (mAP and the study's size metric), so Optuna Dashboard does not show
  "Objective 0 / Objective 1".
- Every Optuna trial carries the Tune trial id and the MLflow run id (user attributes), and every MLflow
  run the Optuna study and trial number (tags optuna_study, optuna_trial): each of the three tools
  points at the others. The searcher hands the Optuna names to the trial in its config (SEARCH_TAGS) and
  the trial tags its own run: the driver, which feeds thousands of screened trials, writes nothing to
  MLflow per trial.
- A trial that ended before its last epoch without an error (a scheduler stopped it) is told to Optuna as
  PRUNED, not as COMPLETE with partial values, which would mislead the sampler.
"""

from __future__ import annotations

import copy
import functools
import warnings

from optuna.storages import JournalStorage
from optuna.trial import TrialState
from ray.tune.search.optuna import OptunaSearch

from trainables.trial.run_markers import trial_run_id


class StudySearch(OptunaSearch):
    def __init__(self, *args, epochs: int, metric_names: list[str], runs_dir: str, forget_finished: bool = False,
                 **kwargs) -> None:
        """`forget_finished`: drop each Optuna trial handle once told (screening, which is never restored
        from this searcher's state: a sweep's driver memory stays flat; the journal keeps every result)."""
        self._epochs, self._metric_names, self._forget = epochs, metric_names, forget_finished
        self._runs_dir = runs_dir
        super().__init__(*args, **kwargs)  # sets the Optuna study up (see _setup_study)

    def _setup_study(self, mode):
        super()._setup_study(mode)
        if self._ot_study.metric_names is None:
            with warnings.catch_warnings():  # "experimental" in Optuna 5: stable enough to name objectives
                warnings.simplefilter("ignore")
                self._ot_study.set_metric_names(self._metric_names)

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        if isinstance(config, dict) and trial_id in self._ot_trials:
            config = {**config, "optuna_study": self._study_name, "optuna_trial": self._ot_trials[trial_id].number}
        return config

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        if trial_id in self._ot_trials and trial_id not in self._completed_trials:
            if self._finished_in_storage(trial_id):  # told before a driver restart: the journal has it
                self._completed_trials.add(trial_id)
                return
            self._link(trial_id, result or {})
        stopped = bool(result) and not error and int(result.get("epoch", self._epochs)) < self._epochs
        if stopped and trial_id in self._ot_trials:
            if trial_id not in self._completed_trials:
                self._ot_study.tell(self._ot_trials[trial_id], state=TrialState.PRUNED)
                self._completed_trials.add(trial_id)
        elif trial_id not in self._completed_trials:
            super().on_trial_complete(trial_id, result, error)
        if self._forget:
            self._ot_trials.pop(trial_id, None)

    def _finished_in_storage(self, trial_id: str) -> bool:
        """A searcher restored from Tune's checkpoint may not know that it told this trial already."""
        ot_trial = self._ot_trials[trial_id]
        return self._ot_study._storage.get_trial(ot_trial._trial_id).state.is_finished()

    def _link(self, trial_id: str, result: dict) -> None:
        """Optuna trial -> Tune trial and MLflow run (the run's tags point back: see suggest)."""
        ot_trial = self._ot_trials[trial_id]
        ot_trial.set_user_attr("tune_trial_id", trial_id)
        # a stopped trial returns no final result: its run id is in the marker its trial function wrote
        run_id = result.get("mlflow_run_id") or trial_run_id(self._runs_dir, trial_id)
        if run_id:
            ot_trial.set_user_attr("mlflow_run_id", run_id)


class SweepJournalStorage(JournalStorage):
    """Optuna's journal storage, with Study.ask() at a flat cost.

    ask() first looks for enqueued (WAITING) trials, and the journal answers by testing the state of every
    trial of the study: 1 ms a trial at 1,000 trials, 13 ms at 10,000 (bench/sweep_scale.py). A trial
    leaves WAITING once and never returns to it, so the trials before the first one still WAITING need no
    second look: each study keeps that watermark and only the trials after it are tested.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._not_waiting_before: dict[int, int] = {}

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states=None):
        if states is None or tuple(states) != (TrialState.WAITING,):
            return super().get_all_trials(study_id, deepcopy, states)
        with self._thread_lock:  # the journal's own replay (Optuna 5's JournalStorage internals)
            self._sync_with_backend()
            trials, ids = self._replay_result._trials, self._replay_result._study_id_to_trial_ids[study_id]
            start = self._not_waiting_before.get(study_id, 0)
            while start < len(ids) and trials[ids[start]].state != TrialState.WAITING:
                start += 1
            self._not_waiting_before[study_id] = start
            waiting = [trials[i] for i in ids[start:] if trials[i].state == TrialState.WAITING]
        return copy.deepcopy(waiting) if deepcopy else waiting


@functools.lru_cache(maxsize=4)
def journal_storage(path: str) -> SweepJournalStorage:
    """The driver's one storage of the journal at `path`. Each Tune run of a screening (every SCREEN_CHUNK
    trials) builds a new searcher; a new storage would replay the whole journal (0.33 ms of CPU a trial:
    3.3 s at 10,000, paid again at every run), this one reads only the lines written since (it syncs with
    the file at every access, so another process's writes are seen)."""
    from optuna.storages.journal import JournalFileBackend

    return SweepJournalStorage(JournalFileBackend(path))
