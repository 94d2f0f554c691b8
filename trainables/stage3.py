"""Stage 3 of IML-GCN as its two algorithms, sharing the model construction and the epoch loop.

- `finetune`: backbone (from stage 1) and head train jointly on the images: the paper's protocol. With
  head_warmup_epochs, a new head first trains alone on the cached stage-1 features (backbone untouched),
  then the backbone is unfrozen: the same warm-up for every arm of a comparison.
- `train_head`: the head alone trains on the cached stage-1 features F_GAP (finetune_backbone=false,
  the fast screening mode); no backbone is built, and the saved model refers to the stage-1 backbone.

The head is IML-GCN's two graph convolutions, or the direct model's linear head for embedding=none
(stage 1's, or a new one with direct_head=reinit). The backbone learns at backbone_lr, the head at gcn_lr.
"""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.epochs import (Log, lr_scheduler, report_epoch, restored_state, resume, train_epoch,
                               train_loader)
from trainables.evaluation import evaluate_model, evaluate_scores
from trainables.gcn_inputs import label_adjacency, node_features
from trainables.losses import build_loss
from trainables.model import build_model, fold, model_parameter_count
from trainables.runtime import Runtime
from trainables.splits import Splits
from trainables.stage_cache import Stage1

Trained = tuple[dict[str, float], nn.Module]


def stage3_model(config: TrialConfig, stage1: Stage1, train_labels: np.ndarray, classes: tuple[str, ...],
                 with_backbone: bool = True) -> nn.Module:
    """IML-GCN (or the direct model for embedding=none) on the stage-1 backbone, or its head alone."""
    features = node_features(config, stage1.train_features, train_labels, classes)
    adjacency = None if features is None else label_adjacency(config, train_labels)
    model = build_model(config.backbone, len(classes), config.embedding, node_features=features,
                        adjacency=adjacency, hidden=config.gcn_hidden, with_backbone=with_backbone)
    if with_backbone:
        model.backbone.load_state_dict(stage1.backbone_state)
    if config.embedding == "none" and config.direct_head == "keep":
        model.head.load_state_dict(stage1.head_state)
    return model


def finetune(config: TrialConfig, stage1: Stage1, splits: Splits, runtime: Runtime, log: Log,
             direct_mAP: float = float("nan")) -> Trained:
    """Train backbone + head jointly for config.epochs on the images (augmented training transform),
    after head_warmup_epochs of the head alone on the cached features."""
    torch.manual_seed(config.seed)
    with runtime.timed("model"):
        model = stage3_model(config, stage1, splits.train.labels, splits.train.classes).to(runtime.device)
    if config.head_warmup_epochs and config.epochs and restored_state(runtime, "train") is None:
        with runtime.timed("warmup"):
            warm_up_head(config, model, stage1, splits.train.labels, runtime, log)
    wrapped = runtime.wrap(model)
    head = [p for name, p in model.named_parameters() if not name.startswith("backbone.")]
    optimizer = torch.optim.Adam([{"params": head, "lr": config.gcn_lr},
                                  {"params": list(model.backbone.parameters()), "lr": config.backbone_lr}],
                                 weight_decay=config.weight_decay)
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_focal_grad)
    loader, sampler = train_loader(splits.train_set, config, runtime)
    scaler = runtime.grad_scaler()

    def run_epoch(epoch: int) -> float:
        sampler.set_epoch(epoch)
        wrapped.train()
        return train_epoch(wrapped, loader, loss_fn, optimizer, runtime, scaler)

    def evaluate() -> dict[str, float]:
        return evaluate_model(model, splits.val_set, splits.val.labels, runtime, config.batch_size,
                              config.loader_workers)

    sizes = {"n_params": model_parameter_count(model), "n_params_inference": model_parameter_count(fold(model))}
    return _fit(config, model, optimizer, run_epoch, evaluate, sizes, direct_mAP, runtime, log)


def warm_up_head(config: TrialConfig, model: nn.Module, stage1: Stage1, train_labels: np.ndarray,
                 runtime: Runtime, log: Log) -> None:
    """head_warmup_epochs of the head alone on the cached F_GAP (constant gcn_lr, its own Adam): the
    backbone is not run and not changed, so a new head does not send large gradients into it."""
    head = [p for name, p in model.named_parameters() if not name.startswith("backbone.")]
    optimizer = torch.optim.Adam(head, lr=config.gcn_lr, weight_decay=config.weight_decay)
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_focal_grad)
    features = torch.as_tensor(stage1.train_features, device=runtime.device)
    targets = torch.as_tensor(train_labels, dtype=torch.float32, device=runtime.device)
    for epoch in range(config.head_warmup_epochs):
        began = time.perf_counter()
        loss = train_epoch(model.logits_from_features, _shuffled(features, targets, config, 10_000 + epoch),
                           loss_fn, optimizer, runtime, runtime.grad_scaler())
        log(f"[warm-up] epoch {epoch + 1}/{config.head_warmup_epochs}  loss {loss:.4f}  (head only, cached "
            f"features, {time.perf_counter() - began:.1f} s)")


def _shuffled(features: torch.Tensor, targets: torch.Tensor, config: TrialConfig, salt: int):
    """Batches of (features, targets) in an order fixed by the seed and `salt`."""
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(config.seed + salt))
    return ((features[i], targets[i]) for i in order.split(config.batch_size))


def train_head(config: TrialConfig, stage1: Stage1, train_labels: np.ndarray, val_labels: np.ndarray,
               classes: tuple[str, ...], runtime: Runtime, log: Log, direct_mAP: float = float("nan")) -> Trained:
    """Train the head alone on the cached F_GAP of the training images; evaluate on the cached validation
    features. Returns the head (no backbone): n_params still counts the whole model."""
    torch.manual_seed(config.seed)
    model = stage3_model(config, stage1, train_labels, classes, with_backbone=False).to(runtime.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.gcn_lr, weight_decay=config.weight_decay)
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_focal_grad)
    train_x = torch.as_tensor(stage1.train_features, device=runtime.device)
    train_y = torch.as_tensor(train_labels, dtype=torch.float32, device=runtime.device)
    val_x = torch.as_tensor(stage1.val_features, device=runtime.device)
    scaler = runtime.grad_scaler()

    def run_epoch(epoch: int) -> float:
        model.train()
        return train_epoch(model.logits_from_features, _shuffled(train_x, train_y, config, epoch), loss_fn,
                           optimizer, runtime, scaler)

    def evaluate() -> dict[str, float]:
        with torch.no_grad(), runtime.autocast():
            scores = torch.sigmoid(model.logits_from_features(val_x)).float().cpu().numpy()
        return evaluate_scores(scores, val_labels)

    sizes = {"n_params": model_parameter_count(model, config.backbone),
             "n_params_inference": model_parameter_count(fold(model), config.backbone)}
    return _fit(config, model, optimizer, run_epoch, evaluate, sizes, direct_mAP, runtime, log)


def _fit(config: TrialConfig, model: nn.Module, optimizer: torch.optim.Optimizer, run_epoch: Callable[[int], float],
         evaluate: Callable[[], dict], sizes: dict[str, int], direct_mAP: float, runtime: Runtime,
         log: Log) -> Trained:
    """The epoch loop: resume from a restored checkpoint, then train, evaluate, step the schedule, report
    and checkpoint each epoch. With epochs = 0 (direct model only) the stage-1 model is evaluated once.
    Every report carries `direct_mAP`, the same-budget direct model's mAP (see trainables.baseline)."""
    scheduler = lr_scheduler(config, optimizer, config.epochs)
    direct = {"direct_mAP": direct_mAP}
    start, metrics = resume(runtime, "train", model, optimizer, scheduler, log)
    for epoch in range(start, config.epochs):
        began = time.perf_counter()
        with runtime.timed("train"):
            loss = run_epoch(epoch)
        with runtime.timed("evaluate"):
            metrics = {**evaluate(), **sizes}
        scheduler.step()
        log(f"[train] epoch {epoch + 1}/{config.epochs}  loss {loss:.4f}  val mAP {metrics['mAP']:.2f}  "
            f"({time.perf_counter() - began:.1f} s)")
        state = {"stage": "train", "epoch": epoch + 1, "metrics": metrics, "model": model.state_dict(),
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        with runtime.timed("report"):
            report_epoch(runtime, {"epoch": epoch + 1, "loss": loss, **metrics, **direct}, state)
    if not metrics:  # epochs = 0: the stage-1 direct model is the result
        metrics = {**evaluate(), **sizes}
        runtime.report({"epoch": 0, **metrics, **direct}, None)
    return metrics, model
