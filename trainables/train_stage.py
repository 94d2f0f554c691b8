"""Stage 3 of IML-GCN: build the label graph and node features, then train backbone + GCN jointly.

`finetune_backbone=False` is the fast screening mode: the backbone stays frozen, the cached stage-1
features F_GAP stand in for the images and only the GCN (or the linear head) trains.
"""

from __future__ import annotations

import time
from importlib import resources

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset

from trainables.config import TrialConfig
from trainables.evaluation import evaluate_model, evaluate_scores
from trainables.label_graph import (cooccurrence, correlation_matrix, image_feature_embeddings,
                                    mlgcn_correlation_matrix, normalize_adjacency, word_embeddings)
from trainables.losses import build_loss
from trainables.model import build_model, model_parameter_count
from trainables.runtime import Runtime
from trainables.stage_cache import Stage1
from trainables.stages import Log, report_epoch, restored_state, train_epoch, train_loader

PACKAGED_GLOVE = {"synthetic": "coco_glove300.npz", "coco": "coco_glove300.npz", "voc": "voc_glove300.npz"}
Trained = tuple[dict[str, float], nn.Module]


def word_embeddings_path(config: TrialConfig) -> str:
    """The configured GloVe file, else the packaged one for the data set's class names."""
    if config.word_embeddings:
        return config.word_embeddings
    if config.dataset not in PACKAGED_GLOVE:
        raise ValueError(f"embedding=word on dataset={config.dataset} needs vectors for its labels: "
                         "set word_embeddings=FILE.npz (arrays classes, vectors)")
    return str(resources.files("trainables") / "resources" / PACKAGED_GLOVE[config.dataset])


def node_features(config: TrialConfig, stage1: Stage1, train_labels: np.ndarray,
                  classes: tuple[str, ...]) -> np.ndarray | None:
    """Node features H0 (C x in_dim): GloVe (word), F_I (fi) or PCA of F_I (fpca, k = pca_dim or C)."""
    if config.embedding == "none":
        return None
    if config.embedding == "word":
        return word_embeddings(word_embeddings_path(config), list(classes))
    pca_dim = None if config.embedding == "fi" else (config.pca_dim or len(classes))
    return image_feature_embeddings(stage1.train_features, train_labels, pca_dim=pca_dim,
                                    seed=config.seed, class_names=list(classes))


def label_adjacency(config: TrialConfig, train_labels: np.ndarray) -> np.ndarray:
    """A_hat: Eq. 3-4 (or ML-GCN's code) from training co-occurrence, then D^-1/2 normalisation."""
    counts, image_counts = cooccurrence(train_labels)
    build = correlation_matrix if config.graph == "paper" else mlgcn_correlation_matrix
    return normalize_adjacency(build(counts, image_counts, config.tau, config.p))


def stage3_model(config: TrialConfig, stage1: Stage1, train_labels: np.ndarray,
                 classes: tuple[str, ...]) -> nn.Module:
    """IML-GCN (or the direct model for embedding=none) initialised from the stage-1 backbone."""
    features = node_features(config, stage1, train_labels, classes)
    adjacency = None if features is None else torch.as_tensor(label_adjacency(config, train_labels))
    features = None if features is None else torch.as_tensor(features, dtype=torch.float32)
    model = build_model(config.backbone, len(classes), config.embedding, node_features=features,
                        adjacency=adjacency, hidden=config.gcn_hidden)
    model.backbone.load_state_dict(stage1.backbone_state)
    if config.embedding == "none":
        model.head.load_state_dict(stage1.head_state)
    return model


def _scheduler(config: TrialConfig, optimizer: torch.optim.Optimizer):
    if config.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(config.epochs, 1))
    if config.lr_schedule == "step":
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=config.milestones(), gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


def _feature_batches(features: torch.Tensor, targets: torch.Tensor, batch_size: int, seed: int):
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        yield features[index], targets[index]


def train_stage(config: TrialConfig, stage1: Stage1, train_set: Dataset, val_set: Dataset,
                train_labels: np.ndarray, val_labels: np.ndarray, classes: tuple[str, ...],
                runtime: Runtime, log: Log) -> Trained:
    """Train for `config.epochs`; backbone at backbone_lr, GCN/head at gcn_lr.

    Returns the final validation metrics (with n_params) and the trained (unwrapped) model. With
    epochs = 0 (direct model only) the result is the stage-1 model, evaluated once.
    """
    torch.manual_seed(config.seed)
    model = stage3_model(config, stage1, train_labels, classes)
    n_params = model_parameter_count(model)
    fast = not config.finetune_backbone
    if fast:
        model.backbone.requires_grad_(False)
    model = model.to(runtime.device)
    wrapped = model if fast else runtime.wrap(model)
    head_params = [p for name, p in model.named_parameters() if not name.startswith("backbone.")]
    groups = [{"params": head_params, "lr": config.gcn_lr}]
    if not fast:
        groups.append({"params": list(model.backbone.parameters()), "lr": config.backbone_lr})
    optimizer = torch.optim.Adam(groups, weight_decay=config.weight_decay)
    scheduler = _scheduler(config, optimizer)
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip)
    start, metrics = 0, {}
    state = restored_state(runtime, "train")
    if state is not None:
        model.load_state_dict(state["model"], strict=not fast)
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, metrics = state["epoch"], state["metrics"]
        log(f"[train] resumed after epoch {start}")
    device = runtime.device
    train_x = torch.as_tensor(stage1.train_features, device=device)
    train_y = torch.as_tensor(train_labels, dtype=torch.float32, device=device)
    val_x = torch.as_tensor(stage1.val_features, device=device)
    loader, sampler = (None, None) if fast else train_loader(train_set, config, runtime)
    scaler = runtime.grad_scaler()

    def evaluate() -> dict[str, float]:
        if not fast:
            return evaluate_model(model, val_set, val_labels, runtime, config.batch_size, config.loader_workers)
        with torch.no_grad(), runtime.autocast():
            return evaluate_scores(torch.sigmoid(model.logits_from_features(val_x)).float().cpu().numpy(), val_labels)

    for epoch in range(start, config.epochs):
        began = time.perf_counter()
        wrapped.train()
        if fast:
            batches = _feature_batches(train_x, train_y, config.batch_size, config.seed + epoch)
            loss = train_epoch(model.logits_from_features, batches, loss_fn, optimizer, runtime, scaler)
        else:
            sampler.set_epoch(epoch)
            loss = train_epoch(wrapped, loader, loss_fn, optimizer, runtime, scaler)
        metrics = evaluate()
        scheduler.step()
        metrics = {**metrics, "n_params": n_params}
        log(f"[train] epoch {epoch + 1}/{config.epochs}  loss {loss:.4f}  val mAP {metrics['mAP']:.2f}  "
            f"({time.perf_counter() - began:.1f} s)")
        weights = {k: v for k, v in model.state_dict().items() if not (fast and k.startswith("backbone."))}
        state = {"stage": "train", "epoch": epoch + 1, "metrics": metrics, "model": weights,
                 "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}
        report = {"epoch": epoch + 1, "loss": loss, **metrics, "direct_mAP": stage1.metrics.get("mAP", float("nan"))}
        report_epoch(runtime, report, state)
    if not metrics:  # epochs = 0: the stage-1 direct model is the result
        metrics = {**evaluate(), "n_params": n_params}
        runtime.report({"epoch": 0, **metrics, "direct_mAP": stage1.metrics.get("mAP", float("nan"))}, None)
    return metrics, model
