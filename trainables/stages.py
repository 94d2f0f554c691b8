"""Stage 1 of IML-GCN: pretrain the direct model (backbone + linear head) with ASL, then embed.

Plain functions over a Runtime, usable without Ray. Each epoch reports its metrics and, on rank 0,
a checkpoint, so a Ray Train worker that dies resumes from the last finished epoch.
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from trainables.config import TrialConfig
from trainables.evaluation import evaluate_model, forward_rows
from trainables.losses import build_loss
from trainables.model import build_model
from trainables.runtime import Runtime

Log = Callable[[str], None]


def train_loader(dataset: Dataset, config: TrialConfig, runtime: Runtime) -> tuple[DataLoader, DistributedSampler]:
    """Shuffled loader over this rank's part of the split; the global batch is split between ranks."""
    sampler = DistributedSampler(dataset, num_replicas=runtime.world_size, rank=runtime.rank,
                                 shuffle=True, seed=config.seed)
    loader = DataLoader(dataset, batch_size=max(1, config.batch_size // runtime.world_size),
                        sampler=sampler, num_workers=config.loader_workers,
                        pin_memory=runtime.device.type == "cuda", persistent_workers=config.loader_workers > 0)
    return loader, sampler


def train_epoch(forward: Callable[[torch.Tensor], torch.Tensor], batches, loss_fn: nn.Module,
                optimizer: torch.optim.Optimizer, runtime: Runtime, scaler: torch.amp.GradScaler | None = None) -> float:
    """One pass of `batches`; returns the mean loss per image (ASL sums over the labels of an image).

    The forward pass runs under the runtime's autocast; the loss is computed in fp32 on the logits;
    with fp16 the scaler scales the loss so small gradients do not underflow.
    """
    scaler = scaler or runtime.grad_scaler()
    total, count = 0.0, 0
    for inputs, targets in batches:
        inputs, targets = runtime.to_device(inputs), targets.to(runtime.device, non_blocking=True)
        with runtime.autocast():
            logits = forward(inputs)
        loss = loss_fn(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += float(loss.detach())
        count += len(inputs)
    return total / max(count, 1)


def report_epoch(runtime: Runtime, metrics: dict, state: dict | None) -> None:
    """Report one epoch; rank 0 attaches `state` (model, optimizer, epoch) as the checkpoint."""
    if runtime.is_main and state is not None:
        with tempfile.TemporaryDirectory() as folder:
            torch.save(state, os.path.join(folder, "state.pt"))
            runtime.report(metrics, folder)
    else:
        runtime.report(metrics, None)


def restored_state(runtime: Runtime, stage: str) -> dict | None:
    """The state saved by `report_epoch` in the restored checkpoint, if it belongs to `stage`."""
    if not runtime.checkpoint_dir:
        return None
    path = os.path.join(runtime.checkpoint_dir, "state.pt")
    if not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state if state.get("stage") == stage else None


def pretrain(config: TrialConfig, train_set: Dataset, val_set: Dataset, val_targets: np.ndarray,
             num_classes: int, runtime: Runtime, log: Log) -> tuple[nn.Module, dict[str, float]]:
    """Train backbone + linear head with the configured loss; Adam, cosine decay over the epochs.

    Returns the (unwrapped) direct model and its validation metrics: the paper's baseline row.
    """
    torch.manual_seed(config.seed)
    model = build_model(config.backbone, num_classes, "none", pretrained=config.pretrained,
                        pretrained_path=config.pretrained_path)
    wrapped = runtime.wrap(model)
    optimizer = torch.optim.Adam(wrapped.parameters(), lr=config.pretrain_lr, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.pretrain_epochs, 1))
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip)
    start, metrics = 0, {}
    state = restored_state(runtime, "pretrain")
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, metrics = state["epoch"], state["metrics"]
        log(f"[pretrain] resumed after epoch {start}")
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
