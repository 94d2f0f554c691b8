"""The three stages end to end, as a plain function over a Runtime: no Ray here.

pretrain -> embed (stages 1-2, stored once per key) -> the same-budget direct model (the baseline,
stored once per key and budget) -> stage 3 (fine-tuning, or the head alone on cached features).
`ray_runtime.train_loop_per_worker` runs this inside Ray Train workers; tests and notebooks call it directly.
"""

from __future__ import annotations

import dataclasses

from trainables.stages.baseline import baseline_config, baseline_key, load_baseline, save_baseline
from trainables.config import TrialConfig
from trainables.training.epochs import Log
from trainables.stages.pretrain import run_stage1
from trainables.training.runtime import Runtime, discard_report
from trainables.models.saved_model import save_model
from trainables.stages.gcn_inputs import GCNInputs, gcn_inputs, stored_inputs
from trainables.training.splits import Splits, load_splits
from trainables.stages.stage3 import Trained, finetune, train_head_only
from trainables.stages.stage_cache import Stage1, stage1_weights

STAGES = ("all", "stage1", "baseline")


def run_stages(config: TrialConfig, stage1_dir: str, runtime: Runtime, log: Log,
               stages: str = "all", model_dir: str | None = None, split_index: str = "",
               reference: str = "") -> dict:
    """Stage 1 (cached by key); then the baseline (cached by key and budget) unless `stages == "stage1"`;
    then stage 3 unless `stages == "baseline"`. Returns the final metrics of the last stage run, with
    `direct_mAP` = the baseline's mAP. With `model_dir`, rank 0 saves the trained model there; with
    `split_index`, the splits come from the driver's index instead of the annotation files.

    `reference` names a stored baseline to compare with instead of this config's own (a study's trials
    search learning rates, but all compare with the one baseline of the study's base config). With
    stages="baseline" the head-only baseline (finetune_backbone=false) is stored too: screening's reference.
    """
    if stages not in STAGES:
        raise ValueError(f"stages={stages!r}: use one of {', '.join(STAGES)}")
    runtime.configure(config.precision, config.channels_last)
    with runtime.timed("data"):
        splits = load_splits(config, split_index)
    with runtime.timed("stage1"):
        stage1 = run_stage1(config, splits, stage1_dir, runtime, log)
    if stages == "stage1":
        return stage1.metrics
    inputs = _inputs(stage1, splits, stage1_dir, split_index)
    if stages == "baseline":
        if config.finetune_backbone:
            _stored_baseline(dataclasses.replace(config, finetune_backbone=False), stage1, inputs, splits, stage1_dir,
                             runtime, log, quiet=True)
        return _stored_baseline(config, stage1, inputs, splits, stage1_dir, runtime, log, quiet=False)
    if config.embedding == "none":  # the run is its own baseline: train it as the run and store it
        metrics, model = _stage3(config, stage1, inputs, splits, runtime, log, float("nan"))
        if runtime.is_main and load_baseline(stage1_dir, baseline_key(config)) is None:
            save_baseline(stage1_dir, baseline_key(config), metrics)
        direct = metrics
    else:
        direct = _reference(config, reference, stage1, inputs, splits, stage1_dir, runtime, log)
        metrics, model = _stage3(config, stage1, inputs, splits, runtime, log, direct["mAP"])
    return _finish(config, stage1, splits, stage1_dir, runtime, log, model_dir,
                   {**metrics, "direct_mAP": direct["mAP"]}, model)


def _inputs(stage1: Stage1, splits: Splits, stage1_dir: str, split_index: str) -> GCNInputs:
    """The heads' inputs: loaded once per process from the store when the driver wrote a split index (a
    reused trial process), else built from this run's stage 1 and splits."""
    if split_index:
        return stored_inputs(str(stage1_dir), stage1.key, split_index)
    return gcn_inputs(stage1, splits.train.labels, splits.val.labels, splits.train.classes)


def _reference(config: TrialConfig, reference: str, stage1: Stage1, inputs: GCNInputs, splits: Splits,
               stage1_dir: str, runtime: Runtime, log: Log) -> dict:
    """The baseline this run compares with: the named one (a study's, which must exist), else the
    config's own, trained here (quietly: no reports, no checkpoints) when nothing stored it before."""
    if reference:
        direct = load_baseline(stage1_dir, reference)
        if direct is None:
            raise FileNotFoundError(f"the study's baseline {reference} is missing from {stage1_dir}: "
                                    "run `imlgcn study resume` to train it again")
        return direct
    return _stored_baseline(config, stage1, inputs, splits, stage1_dir, runtime, log, quiet=True)


def _stored_baseline(config: TrialConfig, stage1: Stage1, inputs: GCNInputs, splits: Splits, stage1_dir: str,
                     runtime: Runtime, log: Log, quiet: bool) -> dict:
    """The baseline of `config`'s budget from the store, or trained and stored. `quiet` trains it without
    reports or checkpoints (inside another run); otherwise it is the run (epoch reports, resumable)."""
    key = baseline_key(config)
    direct = load_baseline(stage1_dir, key)
    if direct is not None:
        if not quiet:
            log(f"[baseline] reusing {key} (same-budget direct model mAP {direct['mAP']:.2f})")
        return {**direct, "direct_mAP": direct["mAP"]}
    log(f"[baseline] training the same-budget direct model {key}")
    if quiet:
        runtime = dataclasses.replace(runtime, report=discard_report, checkpoint_dir=None)
    direct, _ = _stage3(baseline_config(config), stage1, inputs, splits, runtime, log, float("nan"))
    if runtime.is_main:
        save_baseline(stage1_dir, key, direct)
    return {**direct, "direct_mAP": direct["mAP"]}


def _finish(config: TrialConfig, stage1: Stage1, splits: Splits, stage1_dir: str, runtime: Runtime, log: Log,
            model_dir: str | None, metrics: dict, model) -> dict:
    """Rank 0 saves the model (a head-only one refers to the stored stage-1 backbone); returns `metrics`."""
    if model_dir and runtime.is_main:
        backbone_weights = None if config.finetune_backbone else stage1_weights(stage1_dir, stage1.key)
        with runtime.timed("save_model"):
            save_model(model_dir, model, config, splits.train.classes, _numbers(metrics), backbone_weights)
        log(f"[train] model saved to {model_dir}")
    return metrics


def _stage3(config: TrialConfig, stage1: Stage1, inputs: GCNInputs, splits: Splits, runtime: Runtime, log: Log,
            direct_mAP: float) -> Trained:
    """Stage 3 by the config's mode: fine-tune the backbone with the head, or the head alone."""
    if config.finetune_backbone:
        return finetune(config, stage1.backbone_state, inputs, splits, runtime, log, direct_mAP)
    return train_head_only(config, inputs, runtime, log, direct_mAP)


def _numbers(metrics: dict) -> dict[str, float]:
    """The scalar metrics (per-class lists left out), e.g. for a saved model's imlgcn.json."""
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))}
