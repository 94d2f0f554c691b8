"""The epoch machinery both training stages share: the loader, one pass over the batches, the learning
rate schedule, and the per-epoch report with its checkpoint (and reading it back after a restart).

Plain functions over a Runtime, usable without Ray. Rank 0 attaches a checkpoint to every epoch's
report, so a run whose process dies resumes from the last finished epoch: `fit` is that loop, shared by
stage 3's two algorithms (fine-tuning, and the head alone on cached features).
"""

from __future__ import annotations

import os
import tempfile
import time
from typing import Callable

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from trainables.config import TrialConfig
from trainables.training.runtime import Runtime

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
    runtime.first_step()
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


def lr_scheduler(config: TrialConfig, optimizer: torch.optim.Optimizer, epochs: int, schedule: str | None = None):
    """cosine over `epochs` | step (x0.1 at lr_milestones) | constant; stage 1 always uses cosine."""
    schedule = schedule or config.lr_schedule
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.milestones(), gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def model_label(config: TrialConfig) -> str:
    """Which model a console line is about: a run trains the same-budget direct model (its baseline) and then
    IML-GCN, one after the other, so their epoch lines differ only by this."""
    if config.embedding == "none":
        return "the direct model (same-budget baseline)"
    return f"IML-GCN ({config.embedding} node features)"


def report_epoch(runtime: Runtime, metrics: dict, state: dict | None) -> None:
    """Report one epoch; rank 0 attaches `state` (model, optimizer, epoch) as the checkpoint. The folder
    passes to the reporter, which deletes it once persisted (a Ray Train worker uploads it in the
    background while training goes on)."""
    if runtime.is_main and state is not None:
        folder = tempfile.mkdtemp(prefix="imlgcn-checkpoint-", dir=runtime.staging_dir)
        torch.save(state, os.path.join(folder, "state.pt"))
        runtime.report(metrics, folder)
    else:
        runtime.report(metrics, None)


def resume(runtime: Runtime, stage: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler,
           log: Log) -> tuple[int, dict]:
    """(first epoch to run, last metrics): model, optimizer and schedule loaded from the restored
    checkpoint when it belongs to `stage`, else (0, {})."""
    state = restored_state(runtime, stage)
    if state is None:
        return 0, {}
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    log(f"[{stage}] resumed after epoch {state['epoch']}")
    return state["epoch"], state["metrics"]


def restored_state(runtime: Runtime, stage: str) -> dict | None:
    """The state saved by `report_epoch` in the restored checkpoint, if it belongs to `stage`."""
    if not runtime.checkpoint_dir:
        return None
    path = os.path.join(runtime.checkpoint_dir, "state.pt")
    if not os.path.exists(path):
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    return state if state.get("stage") == stage else None


def fit(config: TrialConfig, model: nn.Module, optimizer: torch.optim.Optimizer, scheduler,
        run_epoch: Callable[[int], float], evaluate: Callable[[], dict], sizes: dict, direct_mAP: float,
        runtime: Runtime, log: Log) -> dict:
    """Stage 3's epoch loop: resume from a restored checkpoint, then for each of config.epochs train,
    evaluate, step the schedule, report and checkpoint. With epochs = 0 (the direct model only) the model
    is evaluated once. Returns the last metrics with `sizes`; every report also carries `direct_mAP`, the
    same-budget direct model's mAP (see trainables.stages.baseline)."""
    direct = {"direct_mAP": direct_mAP}
    start, metrics = resume(runtime, "train", model, optimizer, scheduler, log)
    for epoch in range(start, config.epochs):
        began = time.perf_counter()
        with runtime.timed("train"):
            loss = run_epoch(epoch)
        with runtime.timed("evaluate"):
            metrics = {**evaluate(), **sizes}
        scheduler.step()
        log(f"[train] epoch {epoch + 1}/{config.epochs} of {model_label(config)}  loss {loss:.4f}  "
            f"val mAP {metrics['mAP']:.2f}  "
            f"({time.perf_counter() - began:.1f} s)")
        state = {"stage": "train", "epoch": epoch + 1, "metrics": metrics, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        with runtime.timed("report"):
            report_epoch(runtime, {"epoch": epoch + 1, "loss": loss, **metrics, **direct}, state)
    if not metrics:  # epochs = 0: the stage-1 direct model is the result
        with runtime.timed("evaluate"):
            metrics = {**evaluate(), **sizes}
        runtime.report({"epoch": 0, **metrics, **direct}, None)
    return metrics
