"""The three stages end to end (pretrain -> embed -> train), and the Ray Train worker entry point.

`run_stages` is a plain function over a Runtime; `train_loop_per_worker` is what `TorchTrainer` runs on
each Ray Train worker: it builds the Runtime from Ray's context and logs epochs to MLflow from rank 0.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trainables.config import TrialConfig
from trainables.data import SPLITS, ImageDataset, LabelledImages, read_split
from trainables.preprocess import build_transforms, data_config
from trainables.runtime import Runtime
from trainables.saved_model import save_model
from trainables.stage_cache import Stage1, load_stage1, save_stage1, stage1_key
from trainables.stages import Log, embed, pretrain
from trainables.train_stage import train_stage


@dataclass(frozen=True)
class Splits:
    """Train and validation images with their label matrices, and the transformed datasets."""

    train: LabelledImages
    val: LabelledImages
    train_set: ImageDataset  # training transform (augmentation)
    train_eval_set: ImageDataset  # eval transform, for F_GAP
    val_set: ImageDataset


def load_splits(config: TrialConfig) -> Splits:
    """Read both splits of the configured data set (data_dir already resolved by the driver)."""
    train_name, val_name = SPLITS[config.dataset]
    train = read_split(config.dataset, config.data_dir, train_name)
    val = read_split(config.dataset, config.data_dir, val_name)
    preprocess = data_config(config.backbone, config.image_size)
    fit, plain = build_transforms(preprocess, True, config.augment), build_transforms(preprocess, False)
    return Splits(train, val, ImageDataset(train, fit), ImageDataset(train, plain), ImageDataset(val, plain))


def run_stage1(config: TrialConfig, splits: Splits, cache_dir: str, runtime: Runtime, log: Log) -> Stage1:
    """Load stage 1 for this config's key from the cache, or pretrain + embed and store it."""
    key = stage1_key(config)
    stage1 = load_stage1(cache_dir, key)
    if stage1 is not None:
        log(f"[pretrain] reusing {key} (direct model val mAP {stage1.metrics.get('mAP', float('nan')):.2f})")
        return stage1
    num_classes = len(splits.train.classes)
    model, metrics = pretrain(config, splits.train_set, splits.val_set, splits.val.labels, num_classes, runtime, log)
    log("[embed] pooled features of the training and validation images")
    train_features = embed(model, splits.train_eval_set, runtime, config)
    val_features = embed(model, splits.val_set, runtime, config)
    stage1 = Stage1(key, model.backbone.state_dict(), model.head.state_dict(), train_features, val_features,
                    {k: float(v) for k, v in metrics.items()})
    if runtime.is_main:
        save_stage1(cache_dir, stage1)
    runtime.barrier()
    return stage1


def run_stages(config: TrialConfig, cache_dir: str, runtime: Runtime, log: Log,
               stages: str = "all", model_dir: str | None = None) -> dict[str, float]:
    """Stage 1 (cached by key), then stage 3 unless `stages == "stage1"`. Returns final metrics.

    With `model_dir`, rank 0 saves the trained model there (see saved_model) for export and predict.
    """
    runtime.configure(config.precision, config.channels_last)
    splits = load_splits(config)
    stage1 = run_stage1(config, splits, cache_dir, runtime, log)
    if stages == "stage1":
        return stage1.metrics
    metrics, model = train_stage(config, stage1, splits.train_set, splits.val_set, splits.train.labels,
                                 splits.val.labels, splits.train.classes, runtime, log)
    if model_dir and runtime.is_main:
        save_model(model_dir, model, config, splits.train.classes, metrics)
        log(f"[train] model saved to {model_dir}")
    return metrics


def ray_runtime(on_report=None) -> Runtime:
    """The Runtime of this Ray Train worker: rank, device, DDP wrapping, reports and checkpoint."""
    import ray.train
    import ray.train.torch

    context = ray.train.get_context()
    restored = ray.train.get_checkpoint()
    checkpoint_dir = None
    if restored is not None:
        checkpoint_dir = tempfile.mkdtemp(prefix="imlgcn-restore-")
        restored.to_directory(checkpoint_dir)

    def report(metrics: dict, folder: str | None) -> None:
        if on_report is not None and context.get_world_rank() == 0:
            on_report(metrics)
        checkpoint = ray.train.Checkpoint.from_directory(folder) if folder else None
        ray.train.report(metrics, checkpoint=checkpoint)

    return Runtime(rank=context.get_world_rank(), world_size=context.get_world_size(),
                   device=ray.train.torch.get_device(), report=report, checkpoint_dir=checkpoint_dir,
                   wrap_model=lambda m: ray.train.torch.prepare_model(m, move_to_device=False))


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """TorchTrainer entry: {"trial": flat TrialConfig, "cache_dir", "stages", "tracking_uri", "run_id", "model_dir"}."""
    from trainables.tracking import EpochLogger

    config = TrialConfig(**loop_config["trial"])
    logging.getLogger().setLevel(logging.WARNING)  # our epoch lines are the progress, not Train's INFO logs
    threads = int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    logger = EpochLogger.for_run(loop_config.get("tracking_uri"), loop_config.get("run_id"))
    runtime = ray_runtime(on_report=logger.log if logger else None)
    log = (lambda text: print(text, file=sys.stderr, flush=True)) if runtime.is_main else (lambda text: None)
    np.random.seed(config.seed)
    import ray

    log(f"[workers] {runtime.world_size} Ray Train worker(s), rank 0 on node {ray.util.get_node_ip_address()}, "
        f"{torch.get_num_threads()} torch thread(s), device {runtime.device}")
    run_stages(config, loop_config["cache_dir"], runtime, log, loop_config.get("stages", "all"),
               loop_config.get("model_dir"))
