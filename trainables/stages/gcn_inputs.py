"""What every head trains on, from one source: the cached stage-1 features F_GAP with the label matrices,
and the GCN's two constants built from them (node features H0 and the graph A_hat).

Node features H0 are GloVe vectors (word, ML-GCN), F_I (fi) or a PCA of F_I (fpca), one function each in
H0_BUILDERS (the embeddings and their widths: trainables/embeddings.py); A_hat is paper
Eq. 3-4 (or ML-GCN's code) on training co-occurrence, then D^-1/2 normalised as ML-GCN's gen_adj.
`GCNInputs` holds what does not depend on a head configuration (co-occurrence counts, F_I and its full
PCA: F_PCA with k components is its first k columns), built once per stage-1 key and data, so a
screening actor or a reused trial process judges hundreds of heads without rebuilding any of it.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from trainables.config import ConfigError, TrialConfig
from trainables.data.datasets import packaged_word_vectors
from trainables.embeddings import EMBEDDINGS, WORD
from trainables.models.label_graph import (centred_embeddings, cooccurrence, correlation_matrix, image_feature_embeddings,
                                    mlgcn_correlation_matrix, normalize_adjacency, pca_scores, random_embeddings,
                                    word_embeddings)
from trainables.stages.stage_cache import Stage1


@dataclass(frozen=True)
class GCNInputs:
    """The cached features of one stage-1 key and what every head configuration builds on them."""

    classes: tuple[str, ...]
    train_x: torch.Tensor  # F_GAP of the training images (N x d, float32, eval transform)
    train_y: torch.Tensor  # N x C float32 targets (-1 kept: the losses ignore them)
    val_x: torch.Tensor  # F_GAP of the evaluated images
    val_labels: np.ndarray
    counts: np.ndarray  # co-occurrence M (C x C) of the training labels
    image_counts: np.ndarray  # n (C)
    fi: np.ndarray  # F_I (C x d)
    pca_full: np.ndarray  # F_I's PCA with every component (C x min(C, d)): F_PCA(k) = its first k columns
    direct_head: dict[str, torch.Tensor]  # stage 1's linear head (weight, bias): the direct model's start


def gcn_inputs(stage1: Stage1, train_labels: np.ndarray, val_labels: np.ndarray,
               classes: tuple[str, ...]) -> GCNInputs:
    """The inputs of `stage1`'s features and the splits' labels (F_I warns about a label without image)."""
    train_x = np.ascontiguousarray(stage1.train_features, dtype=np.float32)
    counts, image_counts = cooccurrence(train_labels)
    fi = image_feature_embeddings(train_x, train_labels, class_names=list(classes))
    pca_full = pca_scores(fi, min(fi.shape)).astype(np.float32)
    return GCNInputs(tuple(classes), torch.from_numpy(train_x),  # shares stage 1's array (no copy)
                     torch.from_numpy(np.asarray(train_labels, dtype=np.float32)),
                     torch.from_numpy(np.ascontiguousarray(stage1.val_features, dtype=np.float32)),
                     np.asarray(val_labels), counts, image_counts, fi, pca_full, dict(stage1.head_state))


@functools.lru_cache(maxsize=16)  # a study of the size plane screens on one stage 1 per (backbone, resolution)
def stored_inputs(stage1_dir: str, key: str, split_index: str) -> GCNInputs:
    """The inputs of a stored stage 1 and the driver's split index, loaded once per process (Tune reuses
    its actors: a screening actor's hundreds of trials, and the fine-tuning trials of one process)."""
    from trainables.training.split_index import read_index
    from trainables.stages.stage_cache import stored_stage1

    train, val = read_index(split_index)
    return gcn_inputs(stored_stage1(stage1_dir, key), train.labels, val.labels, train.classes)


def word_vectors_path(config: TrialConfig) -> str:
    """The configured word vectors file, else the one packaged for the data set's class names."""
    path = config.word_embeddings or packaged_word_vectors(config.dataset)
    if not path:
        raise ConfigError(f"embedding=word on dataset={config.dataset} needs vectors for its labels: "
                          "set word_embeddings=FILE.npz (arrays classes, vectors)")
    return path


@functools.lru_cache(maxsize=4)
def _word_vectors(path: str, classes: tuple[str, ...]) -> np.ndarray:
    return word_embeddings(path, list(classes))


def check_word_vectors(config: TrialConfig, classes: tuple[str, ...]) -> None:
    """An embedding of word vectors (word): every class has a vector (a ConfigError naming the first that has none)."""
    if EMBEDDINGS[config.embedding].width == WORD:
        try:
            _word_vectors(str(Path(word_vectors_path(config))), tuple(classes))
        except ValueError as error:
            raise ConfigError(str(error)) from None


def _word(config: TrialConfig, inputs: GCNInputs) -> np.ndarray:
    """GloVe vectors of the class names (C x 300 for the packaged ones)."""
    return _word_vectors(word_vectors_path(config), inputs.classes)


def _fi(config: TrialConfig, inputs: GCNInputs) -> np.ndarray:
    """F_I (C x d): each label's mean training feature."""
    return inputs.fi


def _fi_centred(config: TrialConfig, inputs: GCNInputs) -> np.ndarray:
    """F_I minus its mean row (C x d)."""
    return centred_embeddings(inputs.fi)


def _fpca(config: TrialConfig, inputs: GCNInputs) -> np.ndarray:
    """F_PCA: the first k = config.pca_components(C) columns of F_I's PCA scores."""
    classes = len(inputs.classes)
    k = config.pca_components(classes)
    if k > inputs.pca_full.shape[1]:
        raise ConfigError(f"pca_dim={k} exceeds the {inputs.pca_full.shape[1]} components F_I has (C = {classes} "
                          f"labels, d = {inputs.fi.shape[1]} features): use pca_dim <= {inputs.pca_full.shape[1]}")
    return inputs.pca_full[:, :k]


def _random(config: TrialConfig, inputs: GCNInputs) -> np.ndarray:
    """Standard normal features fixed by the seed, k = config.pca_components(C) columns like fpca."""
    classes = len(inputs.classes)
    return random_embeddings(classes, config.pca_components(classes), config.seed)


# embedding name (trainables.embeddings) -> the function that computes its H0 (C x in_dim)
H0_BUILDERS: dict[str, Callable[[TrialConfig, GCNInputs], np.ndarray]] = {
    "word": _word, "fi": _fi, "fpca": _fpca, "fi_centred": _fi_centred, "random": _random}


def node_features(config: TrialConfig, inputs: GCNInputs) -> np.ndarray | None:
    """H0 (C x in_dim) of the configured embedding (see trainables.embeddings for each one's width), by
    H0_BUILDERS; None for the direct model (an embedding without a GCN head)."""
    if not EMBEDDINGS[config.embedding].has_head:
        return None
    return H0_BUILDERS[config.embedding](config, inputs)


def label_adjacency(config: TrialConfig, inputs: GCNInputs) -> np.ndarray:
    """A_hat: Eq. 3-4 (or ML-GCN's code) from training co-occurrence, then D^-1/2 normalisation."""
    build = correlation_matrix if config.graph == "paper" else mlgcn_correlation_matrix
    return normalize_adjacency(build(inputs.counts, inputs.image_counts, config.tau, config.p))
