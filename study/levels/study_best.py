"""The study's best trial so far at a level, read from what the study stored, so the console's "best" at
the start of a Tune run is the study's (across the Tune runs of a screening, resumes and extends), not the
best of the Tune run alone: the trial the report names.

Screening: the highest mAP among the finished screened trials of every screening run, read from their run
markers (RunLog.recorded_trials: seconds for tens of thousands), or from MLflow for a study screened by an
earlier version. Fine-tuning: the highest mAP among the fine-tuned trials that ran all their epochs (the
report's front holds no trial a scheduler stopped), from MLflow.
"""

from __future__ import annotations

from dataclasses import dataclass, field

Best = tuple[float, str]  # (mAP, trial id)

NO_RESULT = "no result yet"


def best_text(best: Best | None) -> str:
    """The status line's "best" part: `best mAP 60.65 (trial 5e8e48a6)`, or that no trial has a result yet."""
    return f"best mAP {best[0]:.2f} (trial {best[1]})" if best is not None else NO_RESULT


def better(best: Best | None, m_ap: float, trial_id: str) -> Best | None:
    """`best`, or (m_ap, trial_id) when that is higher; a missing (NaN) mAP is never the best."""
    if m_ap != m_ap or (best is not None and m_ap <= best[0]):
        return best
    return (float(m_ap), trial_id)


def highest(runs) -> Best | None:
    """The (mAP, trial id) of the run (LoggedRun) with the highest mAP; on a tie the one that ended first."""
    best = None
    for run in sorted(runs, key=lambda run: run.end_time or 0):
        best = better(best, float(run.metrics.get("mAP", float("nan"))), run.trial_id)
    return best


@dataclass(frozen=True)
class StudyBest:
    """Where a level's results are stored (picklable: a Tune callback holding it is saved with its run)."""

    tracking_uri: str
    experiment_id: str
    level: str  # screen | finetune
    screened: dict[str, str] | None = field(default=None)  # StudyRecord.screened_markers()

    @classmethod
    def of(cls, record, level: str) -> "StudyBest":
        return cls(record.tracking_uri, record.experiment_id, level,
                   record.screened_markers() if level == "screen" else None)

    def read(self) -> Best | None:
        """The level's best finished trial so far, None before any."""
        from trainables.trial.mlflow_runs import store

        runs = store(self.tracking_uri)
        if self.level != "screen":
            tuned = runs.search_logged(self.experiment_id, "tags.stage = 'trial' and tags.level != 'screen' and "
                                                           "attributes.status = 'FINISHED'")
            return highest(run for run in tuned if run.tags.get("stopped_early") != "true")
        query = "tags.stage = 'trial' and tags.level = 'screen'"
        if self.screened is None:  # screened by an earlier version: no markers with the values
            return highest(runs.search_logged(self.experiment_id, f"{query} and attributes.status = 'FINISHED'"))
        return highest(run for tune_run, folder in self.screened.items() for run in runs.recorded_trials(
            folder, self.experiment_id, f"{query} and tags.tune_run = '{tune_run}'"))
