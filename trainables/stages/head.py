"""The head trained on cached stage-1 features: one function for every place that does it.

Screening (a study's level 1), the head-only stage 3 (`finetune_backbone=false`, in `imlgcn train` and at
a study's head-only fine-tuning level) and the warm-up before fine-tuning all call `train_head`: the same
optimizer (Adam over the head at gcn_lr), the same batches (the training features shuffled by seed +
epoch) on the same inputs (`gcn_inputs.GCNInputs`). The head is IML-GCN's two graph convolutions, or the
direct model's linear head for embedding=none (stage 1's, or a new one with direct_head=reinit).
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.training.epochs import Log, fit, lr_scheduler, train_epoch
from trainables.training.evaluation import evaluate_scores
from trainables.stages.gcn_inputs import GCNInputs, label_adjacency, node_features
from trainables.training.losses import build_loss
from trainables.models.model import build_model
from trainables.training.runtime import Runtime
from trainables.models.sizes import model_sizes


def head_model(config: TrialConfig, inputs: GCNInputs, backbone_state: dict | None = None) -> nn.Module:
    """IML-GCN (or the direct model for embedding=none) on `inputs`: with the backbone (loaded from
    `backbone_state`) for fine-tuning, else the head alone for cached features. Its initial weights are
    fixed by the seed."""
    torch.manual_seed(config.seed)
    features = node_features(config, inputs)
    adjacency = None if features is None else label_adjacency(config, inputs)
    model = build_model(config.backbone, len(inputs.classes), config.embedding, node_features=features,
                        adjacency=adjacency, hidden=config.gcn_hidden, with_backbone=backbone_state is not None)
    if backbone_state is not None:
        model.backbone.load_state_dict(backbone_state)
    if config.embedding == "none" and config.direct_head == "keep":
        model.head.load_state_dict(inputs.direct_head)
    return model


def head_parameters(model: nn.Module) -> list[nn.Parameter]:
    """Everything but the backbone: the GCN's weights, or the linear head."""
    return [p for name, p in model.named_parameters() if not name.startswith("backbone.")]


def train_head(config: TrialConfig, model: nn.Module, inputs: GCNInputs, runtime: Runtime, log: Log,
               epochs: int, schedule: str, reports: bool = False, direct_mAP: float = math.nan) -> dict:
    """Train the head of `model` (the backbone is not run, not changed) on the cached training features
    for `epochs` with the lr `schedule`, and return its metrics on the cached validation features.

    reports=True makes it a run (stage 3 in head-only mode): every epoch is evaluated, reported and
    checkpointed, and a restarted run resumes (`epochs.fit`); the metrics then carry the sizes too.
    Otherwise (screening, warm-up) it evaluates once, at the end.
    """
    torch.manual_seed(config.seed)
    optimizer = torch.optim.Adam(head_parameters(model), lr=config.gcn_lr, weight_decay=config.weight_decay)
    scheduler = lr_scheduler(config, optimizer, epochs, schedule)
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_focal_grad)
    scaler = runtime.grad_scaler()
    train_x, train_y = inputs.train_x.to(runtime.device), inputs.train_y.to(runtime.device)

    def run_epoch(epoch: int) -> float:
        model.train()
        order = torch.randperm(len(train_x), generator=torch.Generator().manual_seed(config.seed + epoch))
        batches = ((train_x[i], train_y[i]) for i in order.split(config.batch_size))
        return train_epoch(model.logits_from_features, batches, loss_fn, optimizer, runtime, scaler)

    def evaluate() -> dict:
        with torch.no_grad(), runtime.autocast():
            logits = model.logits_from_features(inputs.val_x.to(runtime.device))
        return evaluate_scores(torch.sigmoid(logits).float().cpu().numpy(), inputs.val_labels)

    if reports:
        return fit(config, model, optimizer, scheduler, run_epoch, evaluate, model_sizes(model, config), direct_mAP,
                   runtime, log)
    for epoch in range(epochs):
        run_epoch(epoch)
        scheduler.step()
    return evaluate()


def screen(config: TrialConfig, inputs: GCNInputs, runtime: Runtime | None = None) -> dict:
    """A study's level 1: the configured head trained on the cached features for config.epochs with its
    schedule, evaluated once; its metrics with the model's sizes and the seconds it took (train_s)."""
    began = time.perf_counter()
    model = head_model(config, inputs)
    metrics = train_head(config, model, inputs, runtime or Runtime(), lambda text: None, config.epochs,
                         config.lr_schedule)
    return {**metrics, **model_sizes(model, config), "train_s": time.perf_counter() - began}
