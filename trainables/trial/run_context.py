"""RunContext: what a run needs from the driver besides its TrialConfig, resolved once on the driver.

Paths, MLflow ids and the CPUs each worker was given travel as one frozen dataclass: Ray pickles it into
the trial (and on into Train workers) as it is, so no code reads `context["tracking_uri"]` from a
string-keyed bag.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass

STAGING = "staging"


def clear_staging(train_storage: str) -> None:
    """Remove the checkpoint folders runs of `train_storage` left unreported (see RunContext.staging_dir):
    called by the driver once no run of it is live."""
    shutil.rmtree(os.path.join(train_storage, STAGING), ignore_errors=True)


def screened_runs_dir(runs_dir: str, tune_run: str) -> str:
    """Where screened trials mark their MLflow runs: a folder per planned screening run, which its driver
    counts on resume (RunLog.finished_trials) instead of reading thousands of runs back."""
    return os.path.join(runs_dir, tune_run) if tune_run else runs_dir


@dataclass(frozen=True)
class RunContext:
    """Where a run's results go and what it may use."""

    tracking_uri: str  # MLflow store, resolved (absolute SQLite path or server URL)
    experiment_id: str
    stage1_dir: str  # the stage-1 cache: one folder per key, shared by every run of a storage
    train_storage: str  # Ray Train runs (per-epoch checkpoints)
    models_dir: str  # final models, one folder per trial id or run id
    cpus_per_worker: int = 1  # resolved: CPUs and torch threads of each worker (TrialConfig.worker_cpus)
    runs_dir: str = ""  # a study's `<trial_id>.run` files: the MLflow run id of each trial
    parent_run_id: str = ""  # the study's parent run ("" for `imlgcn train`)
    run_id: str = ""  # the MLflow run the workers log their (stage-3) epochs to
    pretrain_run_id: str = ""  # the MLflow run of stage 1's epochs ("" = run_id)
    model_dir: str = ""  # where this run saves its final model ("" = it saves none)
    stages: str = "all"  # all | stage1 (pretrain + embed only) | baseline (+ the same-budget direct model)
    split_index: str = ""  # the driver's split index (.npz) of the data set; "" = read the annotation files
    level: str = ""  # a study trial's level: screen | finetune (MLflow tag `level`)
    # the study's references (trainables.stages.baseline) by stage-1 key, whatever the trial's searched lrs: one
    # per (backbone, resolution) of a size plane; a key not in it compares with its own baseline
    baseline_keys: tuple[tuple[str, str], ...] = ()
    size_metric: str = "n_params"  # the size a multi-objective study minimises (what a screened trial reports besides mAP)
    tune_run: str = ""  # the study's Tune run a screened trial belongs to (its MLflow tag, to count on resume)
    started_at: float = 0.0  # time.time() when the trial started (0 = when the run's process did): its start-up is timed from it

    def reference(self, stage1_key: str) -> str:
        """The baseline key a run of stage 1 `stage1_key` compares with ("" = its own)."""
        return dict(self.baseline_keys).get(stage1_key, "")

    def screened_runs_dir(self) -> str:
        """Where this screened trial marks its MLflow run (see screened_runs_dir)."""
        return screened_runs_dir(self.runs_dir, self.tune_run)

    def staging_dir(self, name: str) -> str:
        """Where run `name` writes a checkpoint folder before reporting it: train_storage/staging/name, with
        the study's (or training's) own files, not the system's temp folder. The reporter deletes each folder
        once persisted; a trial stopped by a scheduler inside its report (its thread never resumes) leaves its
        last one, which its retry clears and the driver removes once the Tune run is over (clear_staging)."""
        return os.path.join(self.train_storage, STAGING, name)

    def for_run(self, run_id: str, name: str, keep_checkpoints: str = "all") -> "RunContext":
        """This context for one training: its MLflow run, and its model folder models_dir/name (none when
        keep_checkpoints=none)."""
        model_dir = "" if keep_checkpoints == "none" else os.path.join(self.models_dir, name)
        return dataclasses.replace(self, run_id=run_id, model_dir=model_dir)
