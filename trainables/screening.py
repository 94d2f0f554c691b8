"""Level 1 of a study: judge a head configuration on the cached stage-1 features, in well under a second.

Everything that does not depend on the configuration is loaded once per process and reused by every
trial that process runs (Tune reuses its actors): the split index's label matrices, the stage-1
features (memory-mapped), the co-occurrence counts, F_I and its full PCA (F_PCA with k components is
the first k columns of the full one), the word vectors. A trial then builds only the head, trains it
exactly as `stage3.train_head` does (same batches, same seed) and evaluates once, at the end: nothing
reads the per-epoch results at this level.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from trainables.config import TrialConfig
from trainables.epochs import lr_scheduler, train_epoch
from trainables.evaluation import evaluate_scores
from trainables.label_graph import (centred_embeddings, cooccurrence, correlation_matrix, image_feature_embeddings,
                                    mlgcn_correlation_matrix, normalize_adjacency, random_embeddings)
from trainables.losses import build_loss
from trainables.model import build_model, fold, model_parameter_count
from trainables.runtime import Runtime
from trainables.split_index import read_index


@dataclass(frozen=True)
class ScreeningData:
    """What every head configuration of one stage-1 key shares."""

    classes: tuple[str, ...]
    train_x: torch.Tensor  # F_GAP of the training images (N x d)
    train_y: torch.Tensor  # N x C float32 targets (-1 kept: the losses ignore them)
    val_x: torch.Tensor
    val_labels: np.ndarray
    counts: np.ndarray  # co-occurrence M (C x C) of the training labels
    image_counts: np.ndarray  # n (C)
    fi: np.ndarray  # F_I (C x d)
    pca_full: np.ndarray  # F_I's PCA with every component (C x min(C, d)): F_PCA(k) = its first k columns
    direct_head: dict[str, torch.Tensor]  # stage 1's linear head (weight, bias): the direct arm's start


@functools.lru_cache(maxsize=2)
def screening_data(stage1_dir: str, key: str, split_index: str) -> ScreeningData:
    """Load (once per process and key) the inputs every screened configuration shares."""
    from sklearn.decomposition import PCA

    train, val = read_index(split_index)
    folder = Path(stage1_dir) / key
    train_x = np.load(folder / "train_features.npy", mmap_mode="r", allow_pickle=False)
    val_x = np.load(folder / "val_features.npy", mmap_mode="r", allow_pickle=False)
    counts, image_counts = cooccurrence(train.labels)
    fi = image_feature_embeddings(np.asarray(train_x), train.labels, class_names=list(train.classes))
    full = min(fi.shape)
    pca_full = PCA(n_components=full, svd_solver="full", random_state=0).fit_transform(fi).astype(np.float32)
    from safetensors.torch import load_file

    from trainables.stage_cache import stage1_weights

    head = {k[len("head."):]: v for k, v in load_file(str(stage1_weights(stage1_dir, key))).items()
            if k.startswith("head.")}
    return ScreeningData(train.classes, torch.from_numpy(np.array(train_x)),
                         torch.from_numpy(train.labels.astype(np.float32)), torch.from_numpy(np.array(val_x)),
                         val.labels, counts, image_counts, fi, pca_full, head)


@functools.lru_cache(maxsize=4)
def _word_vectors(path: str, classes: tuple[str, ...]) -> np.ndarray:
    from trainables.label_graph import word_embeddings

    return word_embeddings(path, list(classes))


def node_features(config: TrialConfig, data: ScreeningData) -> np.ndarray | None:
    """H0 from the shared inputs: equal to `gcn_inputs.node_features` for the same config (tested)."""
    classes = len(data.classes)
    if config.embedding == "none":
        return None
    if config.embedding == "word":
        from trainables.gcn_inputs import word_vectors_path

        return _word_vectors(word_vectors_path(config), data.classes)
    if config.embedding == "random":
        return random_embeddings(classes, config.pca_components(classes), config.seed)
    if config.embedding == "fpca":
        return data.pca_full[:, :config.pca_components(classes)]
    return centred_embeddings(data.fi) if config.embedding == "fi_centred" else data.fi


def screen(config: TrialConfig, data: ScreeningData, runtime: Runtime | None = None) -> dict:
    """Train the configured head on the cached features for config.epochs (as stage3.train_head) and
    evaluate it once; returns the final metrics with the model's sizes and the seconds it trained."""
    runtime = runtime or Runtime()
    began = time.perf_counter()
    torch.manual_seed(config.seed)
    features = node_features(config, data)
    adjacency = None
    if features is not None:
        build = correlation_matrix if config.graph == "paper" else mlgcn_correlation_matrix
        adjacency = normalize_adjacency(build(data.counts, data.image_counts, config.tau, config.p))
    model = build_model(config.backbone, len(data.classes), config.embedding, node_features=features,
                        adjacency=adjacency, hidden=config.gcn_hidden, with_backbone=False)
    if config.embedding == "none" and config.direct_head == "keep":
        model.head.load_state_dict(data.direct_head)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.gcn_lr, weight_decay=config.weight_decay)
    scheduler = lr_scheduler(config, optimizer, config.epochs)
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_focal_grad)
    scaler = runtime.grad_scaler()
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(data.train_x), generator=torch.Generator().manual_seed(config.seed + epoch))
        batches = ((data.train_x[i], data.train_y[i]) for i in order.split(config.batch_size))
        train_epoch(model.logits_from_features, batches, loss_fn, optimizer, runtime, scaler)
        scheduler.step()
    with torch.no_grad():
        scores = torch.sigmoid(model.logits_from_features(data.val_x)).float().numpy()
    metrics = evaluate_scores(scores, data.val_labels)
    metrics["n_params"] = model_parameter_count(model, config.backbone)
    metrics["n_params_inference"] = model_parameter_count(fold(model), config.backbone)
    metrics["train_s"] = time.perf_counter() - began
    return metrics
