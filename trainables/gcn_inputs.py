"""The GCN's two constants, built from the training data: node features H0 and the graph A_hat.

Node features are GloVe vectors (word, ML-GCN), F_I (fi) or a PCA of F_I (fpca); A_hat is paper
Eq. 3-4 (or ML-GCN's code) on training co-occurrence, then D^-1/2 normalised as ML-GCN's gen_adj.
"""

from __future__ import annotations

import numpy as np

from trainables.config import ConfigError, TrialConfig
from trainables.datasets import packaged_word_vectors
from trainables.label_graph import (centred_embeddings, cooccurrence, correlation_matrix, image_feature_embeddings,
                                    mlgcn_correlation_matrix, normalize_adjacency, random_embeddings,
                                    word_embeddings)


def word_vectors_path(config: TrialConfig) -> str:
    """The configured word vectors file, else the one packaged for the data set's class names."""
    path = config.word_embeddings or packaged_word_vectors(config.dataset)
    if not path:
        raise ConfigError(f"embedding=word on dataset={config.dataset} needs vectors for its labels: "
                          "set word_embeddings=FILE.npz (arrays classes, vectors)")
    return path


def node_features(config: TrialConfig, train_features: np.ndarray | None, train_labels: np.ndarray,
                  classes: tuple[str, ...]) -> np.ndarray | None:
    """H0 (C x in_dim): GloVe (word), F_I (fi) or F_PCA (fpca, k = config.pca_components(C)); None for
    the direct model. `train_features` is F_GAP of the training images (stage 2).

    Controls: fi_centred = F_I minus its mean row (d columns); random = standard normal features fixed by
    the seed, k = config.pca_components(C) columns like fpca: no label information at all.
    """
    if config.embedding == "none":
        return None
    if config.embedding == "word":
        return word_embeddings(word_vectors_path(config), list(classes))
    if config.embedding == "random":
        return random_embeddings(len(classes), config.pca_components(len(classes)), config.seed)
    pca_dim = config.pca_components(len(classes)) if config.embedding == "fpca" else None
    features = image_feature_embeddings(train_features, train_labels, pca_dim=pca_dim, seed=config.seed,
                                        class_names=list(classes))
    return centred_embeddings(features) if config.embedding == "fi_centred" else features


def label_adjacency(config: TrialConfig, train_labels: np.ndarray) -> np.ndarray:
    """A_hat: Eq. 3-4 (or ML-GCN's code) from training co-occurrence, then D^-1/2 normalisation."""
    counts, image_counts = cooccurrence(train_labels)
    build = correlation_matrix if config.graph == "paper" else mlgcn_correlation_matrix
    return normalize_adjacency(build(counts, image_counts, config.tau, config.p))
