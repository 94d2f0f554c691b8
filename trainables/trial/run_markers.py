"""A study's run markers: which MLflow run each trial has, and what a screened trial logged there.

`<runs_dir>/<trial_id>.run` holds the trial's MLflow run id on its first line, written atomically once the
run exists (fine-tuning: when it opens; screening: once it is FINISHED). A trial recorded whole in one batch
(screening, `RunLog.record_trial`) adds a second line: the JSON of exactly what it logged (params, metrics,
tags, end time). Why: a sweep's report, resume and promotion need every screened row, and reading tens of
thousands of runs back from MLflow costs minutes (its SQL store builds ~40 ORM objects per run: 24 s of a 34 s
report at 10,000 trials), while the markers of 10,000 trials read in about a second. MLflow stays the record
users browse; a marker is written only after its run is FINISHED, so it never holds a run MLflow lacks.

`<trial_id>.intent` is left by a screened trial killed between creating its run and marking it: only
those trials are looked up in MLflow.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

INTENT = ".intent"  # record_trial's file for a run it is about to create
MARKER = ".run"


@dataclass(frozen=True)
class LoggedRun:
    """What the report reads of a finished trial run, from MLflow or from its marker: the same fields."""

    run_id: str
    end_time: int  # ms since the epoch, as MLflow stores it
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def trial_id(self) -> str:
        return self.tags.get("trial_id") or self.run_id


def trial_run_id(runs_dir: str, trial_id: str) -> str | None:
    """The MLflow run id recorded for a study trial, or None before the trial started."""
    marker = os.path.join(runs_dir, f"{trial_id}{MARKER}")
    if not os.path.exists(marker):
        return None
    with open(marker) as handle:
        return handle.readline().strip()


def write_marker(runs_dir: str, trial_id: str, run_id: str, logged: LoggedRun | None = None) -> None:
    """Record `<runs_dir>/<trial_id>.run` atomically (a reader never sees half a file); with `logged`, its
    values on the second line."""
    os.makedirs(runs_dir, exist_ok=True)
    marker = os.path.join(runs_dir, f"{trial_id}{MARKER}")
    tmp = f"{marker}.{os.getpid()}.tmp"
    with open(tmp, "w") as handle:
        handle.write(run_id)
        if logged is not None:
            handle.write("\n" + json.dumps({"end_time": logged.end_time, "params": logged.params,
                                            "metrics": logged.metrics, "tags": logged.tags}))
    os.replace(tmp, marker)


def marked_trials(runs_dir: str) -> set[str]:
    """The trial ids with a marker in `runs_dir`."""
    return {p.name[:-len(MARKER)] for p in Path(runs_dir).glob(f"*{MARKER}")}


def pending_intents(runs_dir: str) -> list[str]:
    """Trial ids whose run may exist in MLflow unmarked (an intent without its marker)."""
    return [p.name[:-len(INTENT)] for p in Path(runs_dir).glob(f"*{INTENT}")
            if not Path(runs_dir, f"{p.name[:-len(INTENT)]}{MARKER}").exists()]


def logged_runs(runs_dir: str) -> tuple[list[LoggedRun], list[str]]:
    """The runs recorded whole in `runs_dir`, read from their markers, and the trial ids whose markers hold
    only a run id, or cannot be read (to be read from MLflow)."""
    found, bare = [], []
    for path in Path(runs_dir).glob(f"*{MARKER}"):
        try:
            with open(path, encoding="utf-8") as handle:
                run_id, _, body = handle.read().partition("\n")
            values = json.loads(body) if body else None
            if values is not None:
                found.append(LoggedRun(run_id.strip(), int(values["end_time"]), dict(values["params"]),
                                       dict(values["metrics"]), dict(values["tags"])))
                continue
        except (ValueError, KeyError, TypeError):  # a damaged marker (written atomically, so not by us):
            pass  # MLflow, the record, is read instead
        bare.append(path.name[:-len(MARKER)])
    return found, bare
