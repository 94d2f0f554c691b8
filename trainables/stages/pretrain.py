"""Stages 1 and 2 of IML-GCN: pretrain the direct model (backbone + linear head) with the configured
loss, then embed (F_GAP of every image). Stored once per stage-1 key and reused by every later run.
"""

from __future__ import annotations

import time

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from trainables.config import TrialConfig
from trainables.training.epochs import Log, lr_scheduler, report_epoch, resume, train_epoch, train_loader
from trainables.training.evaluation import evaluate_model, forward_rows
from trainables.training.losses import build_loss
from trainables.models.model import build_model
from trainables.training.runtime import Runtime
from trainables.models.sizes import model_sizes
from trainables.training.splits import Splits
from trainables.stages.stage_cache import Stage1, load_stage1_metrics, save_stage1, stage1_key, stored_stage1


def pretrain(config: TrialConfig, train_set: Dataset, val_set: Dataset, val_targets: np.ndarray,
             num_classes: int, runtime: Runtime, log: Log) -> tuple[nn.Module, dict[str, float]]:
    """Train backbone + linear head with the configured loss; Adam, cosine decay over the epochs.

    Returns the (unwrapped) direct model and its validation metrics.
    """
    torch.manual_seed(config.seed)
    model = build_model(config.backbone, num_classes, "none", pretrained=config.pretrained,
                        pretrained_path=config.pretrained_path)
    wrapped = runtime.wrap(model)
    optimizer = torch.optim.Adam(wrapped.parameters(), lr=config.pretrain_lr, weight_decay=config.weight_decay)
    scheduler = lr_scheduler(config, optimizer, config.pretrain_epochs, "cosine")
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_focal_grad)
    start, metrics = resume(runtime, "pretrain", model, optimizer, scheduler, log)
    loader, sampler = train_loader(train_set, config, runtime)
    scaler = runtime.grad_scaler()
    for epoch in range(start, config.pretrain_epochs):
        began = time.perf_counter()
        sampler.set_epoch(epoch)
        wrapped.train()
        loss = train_epoch(wrapped, loader, loss_fn, optimizer, runtime, scaler)
        scheduler.step()
        metrics = evaluate_model(model, val_set, val_targets, runtime, config.batch_size, config.loader_workers)
        log(f"[pretrain] epoch {epoch + 1}/{config.pretrain_epochs}  loss {loss:.4f}  "
            f"val mAP {metrics['mAP']:.2f}  ({time.perf_counter() - began:.1f} s)")
        report = {"pretrain_epoch": epoch + 1, "pretrain_loss": loss, "pretrain_mAP": metrics["mAP"]}
        state = {"stage": "pretrain", "epoch": epoch + 1, "metrics": metrics, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        report_epoch(runtime, report, state)
    if not metrics:
        metrics = evaluate_model(model, val_set, val_targets, runtime, config.batch_size, config.loader_workers)
    return model, metrics


def embed(model: nn.Module, dataset: Dataset, runtime: Runtime, config: TrialConfig) -> np.ndarray:
    """F_GAP: the backbone's pooled features of every image of `dataset` (N x d, float32)."""
    model.eval()
    return forward_rows(model.forward_features, dataset, runtime, config.batch_size, config.loader_workers)


def run_stage1(config: TrialConfig, splits: Splits, stage1_dir: str, runtime: Runtime, log: Log) -> Stage1:
    """Load stage 1 for this config's key from the cache, or pretrain + embed and store it."""
    key = stage1_key(config)
    if load_stage1_metrics(stage1_dir, key) is not None:
        stage1 = stored_stage1(str(stage1_dir), key)  # once per process: a reused trial actor loads it once
        log(f"[pretrain] reusing {key} (direct model val mAP {stage1.metrics.get('mAP', float('nan')):.2f})")
        return stage1
    num_classes = len(splits.train.classes)
    model, metrics = pretrain(config, splits.train_set, splits.val_set, splits.val.labels, num_classes, runtime, log)
    log("[embed] pooled features of the training and validation images")
    train_features = embed(model, splits.train_eval_set, runtime, config)
    val_features = embed(model, splits.val_set, runtime, config)
    sizes = model_sizes(model, config)  # the direct model's: stage 1 is a study's direct model
    stage1 = Stage1(key, model.backbone.state_dict(), model.head.state_dict(), train_features, val_features,
                    {**{k: float(v) for k, v in metrics.items() if not isinstance(v, list)}, **sizes})
    if runtime.is_main:
        save_stage1(stage1_dir, stage1)
    runtime.barrier()
    return stage1
