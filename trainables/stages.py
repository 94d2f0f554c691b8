"""The three stages end to end, as a plain function over a Runtime: no Ray here.

pretrain -> embed (stage 1 + 2, stored once per key) -> stage 3 (fine-tuning, or the head alone on
cached features). `trainable.train_loop_per_worker` runs this inside Ray Train workers; tests and
notebooks call it directly.
"""

from __future__ import annotations

from trainables.config import TrialConfig
from trainables.epochs import Log
from trainables.pretrain import run_stage1
from trainables.runtime import Runtime
from trainables.saved_model import save_model
from trainables.splits import load_splits
from trainables.stage3 import finetune, train_head
from trainables.stage_cache import stage1_weights

STAGES = ("all", "stage1")


def run_stages(config: TrialConfig, stage1_dir: str, runtime: Runtime, log: Log,
               stages: str = "all", model_dir: str | None = None) -> dict[str, float]:
    """Stage 1 (cached by key), then stage 3 unless `stages == "stage1"`. Returns final metrics.

    With `model_dir`, rank 0 saves the trained model there (see saved_model) for export and predict.
    """
    if stages not in STAGES:
        raise ValueError(f"stages={stages!r}: use one of {', '.join(STAGES)}")
    runtime.configure(config.precision, config.channels_last)
    splits = load_splits(config)
    stage1 = run_stage1(config, splits, stage1_dir, runtime, log)
    if stages == "stage1":
        return stage1.metrics
    backbone_weights = None
    if config.finetune_backbone:
        metrics, model = finetune(config, stage1, splits, runtime, log)
    else:
        metrics, model = train_head(config, stage1, splits.train.labels, splits.val.labels, splits.train.classes,
                                    runtime, log)
        backbone_weights = stage1_weights(stage1_dir, stage1.key)
    if model_dir and runtime.is_main:
        save_model(model_dir, model, config, splits.train.classes, metrics, backbone_weights)
        log(f"[train] model saved to {model_dir}")
    return metrics
