"""The label graph (paper Eq. 3-4, and ML-GCN's code variant) and the GCN's node features.

Counts come from the training label matrix only. Graph functions return float64 (cast to float32 when
registering the buffer); node features are float32. Label -1 (ignore) counts as absent everywhere.
"""

from __future__ import annotations

import os
import warnings
from typing import Mapping, Sequence

import numpy as np


def _present(labels: np.ndarray) -> np.ndarray:
    """N x C float64 indicator of label presence (1 only where the label is 1; -1 and 0 give 0)."""
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be an N x C matrix, got shape {labels.shape}; pass one row per image")
    return (labels > 0).astype(np.float64)


def cooccurrence(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (M, n): M[i, j] = images with both i and j (diagonal 0), n[i] = images with i. int64.

    M = Y^T Y with the diagonal moved to n, Y the 0/1 presence matrix.
    """
    y = _present(labels)
    both = np.rint(y.T @ y).astype(np.int64)  # float BLAS product, exact for counts < 2**53
    counts = np.diag(both).copy()
    np.fill_diagonal(both, 0)
    return both, counts


def _conditional_probability(cooc: np.ndarray, image_counts: np.ndarray) -> np.ndarray:
    """P[i, j] = M[i, j] / n[i] (row i is "given i"); a label with n[i] = 0 gets a row of zeros."""
    cooc = np.asarray(cooc, dtype=np.float64)
    counts = np.asarray(image_counts, dtype=np.float64)
    if cooc.ndim != 2 or cooc.shape[0] != cooc.shape[1]:
        raise ValueError(f"cooccurrence must be a square C x C matrix, got shape {cooc.shape}")
    if counts.shape != (cooc.shape[0],):
        raise ValueError(
            f"image_counts must have shape ({cooc.shape[0]},), got {counts.shape}; pass n from cooccurrence()"
        )
    if (cooc < 0).any() or (counts < 0).any() or not np.isfinite(cooc).all() or not np.isfinite(counts).all():
        raise ValueError("cooccurrence and image_counts must be finite non-negative counts")
    safe = np.where(counts > 0, counts, 1.0)[:, None]
    return np.where(counts[:, None] > 0, cooc / safe, 0.0)


def _check_unit(name: str, value: float) -> None:
    """tau and p are probabilities: reject anything outside [0, 1] (NaN included)."""
    if not (np.isfinite(value) and 0.0 <= value <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {value}; choose a probability")


def correlation_matrix(cooc: np.ndarray, image_counts: np.ndarray, tau: float, p: float) -> np.ndarray:
    """Re-weighted binary correlation matrix A' of the paper (Eq. 3-4), C x C float64.

    P[i, j] = M[i, j] / n[i];  A[i, j] = 1 if P[i, j] >= tau (i != j, diagonal of M ignored);
    A'[i, j] = p * A[i, j] / sum_{k != i} A[i, k] for i != j;  A'[i, i] = 1 - p.
    Rows with neighbours sum to 1; a row without neighbours is 1 - p on the diagonal, 0 elsewhere.
    """
    _check_unit("tau", tau)
    _check_unit("p", p)
    prob = _conditional_probability(cooc, image_counts)
    adj = (prob >= tau).astype(np.float64)
    np.fill_diagonal(adj, 0.0)
    degree = adj.sum(axis=1, keepdims=True)
    out = np.where(degree > 0, p * adj / np.maximum(degree, 1.0), 0.0)
    np.fill_diagonal(out, 1.0 - p)
    return out


def mlgcn_correlation_matrix(
    cooc: np.ndarray, image_counts: np.ndarray, tau: float = 0.4, p: float = 0.25
) -> np.ndarray:
    """ML-GCN's `gen_A` (its code, not its paper), C x C float64, for the `graph: mlgcn` baseline.

    P = M / n[:, None];  A = 1[P >= tau] over the whole matrix (diagonal included: with M's zero
    diagonal it is 0 unless tau = 0);  A' = p * A / (column sums of A + 1e-6) + I.
    Deviation: a label with n = 0 gets P = 0 (ML-GCN would produce NaN from 0 / 0).
    """
    _check_unit("tau", tau)
    _check_unit("p", p)
    prob = _conditional_probability(cooc, image_counts)
    adj = (prob >= tau).astype(np.float64)
    adj = adj * p / (adj.sum(axis=0, keepdims=True) + 1e-6)
    return adj + np.eye(adj.shape[0])


def normalize_adjacency(a: np.ndarray) -> np.ndarray:
    """Symmetric normalisation of ML-GCN's `gen_adj`: A_hat = (A D)^T D, D = diag(rowsum(A))^(-1/2).

    Element-wise A_hat[i, j] = d[i] * A[j, i] * d[j]. A zero row sum gets d = 0 (its node is cut off)
    instead of the reference's inf.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] != a.shape[1] or not np.isfinite(a).all():
        raise ValueError(f"adjacency must be a finite square matrix, got shape {a.shape}")
    row_sum = a.sum(axis=1)
    if (row_sum < 0).any():
        raise ValueError("adjacency has a negative row sum; its inverse square root is undefined")
    d = np.where(row_sum > 0, 1.0 / np.sqrt(np.where(row_sum > 0, row_sum, 1.0)), 0.0)
    return (a * d[None, :]).T * d[None, :]


def image_feature_embeddings(
    features: np.ndarray,
    labels: np.ndarray,
    pca_dim: int | None = None,
    class_names: Sequence[str] | None = None,
) -> np.ndarray:
    """Node features F_I (C x d), or F_PCA (C x k) when `pca_dim` is given; float32.

    F_I[i] = sum_n Y[n, i] F_GAP[n] / sum_n Y[n, i] (a matrix product, Y^T F / counts). A label without
    an image gets the mean of all rows (with a warning), never NaN. F_PCA = the first k = `pca_dim`
    principal-component scores of the C rows of F_I (the rows are the samples; `pca_scores`).
    """
    features = np.asarray(features, dtype=np.float64)
    y = _present(labels)
    if features.ndim != 2 or features.shape[0] != y.shape[0]:
        raise ValueError(f"features must be N x d with N = {y.shape[0]} rows (one per label row), got {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or inf; check the backbone's pooled outputs")
    num_classes, dim = y.shape[1], features.shape[1]
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(f"class_names has {len(class_names)} names for {num_classes} columns; pass one per column")
    counts = y.sum(axis=0)
    fi = (y.T @ features) / np.maximum(counts, 1.0)[:, None]
    for i in np.flatnonzero(counts == 0):
        name = f"{i} ({class_names[i]!r})" if class_names is not None else str(i)
        warnings.warn(f"label {name} has no training image; its F_I row is the mean of all images", stacklevel=2)
        fi[i] = features.mean(axis=0)
    if pca_dim is None:
        return fi.astype(np.float32)
    if not (1 <= pca_dim <= min(num_classes, dim)):
        raise ValueError(f"pca_dim must be in 1..{min(num_classes, dim)} (<= C and <= d), got {pca_dim}")
    return pca_scores(fi, pca_dim).astype(np.float32)


def pca_scores(x: np.ndarray, k: int) -> np.ndarray:
    """The first k principal-component scores of the rows of `x` (n x d, rows are the samples), in x's dtype.

    X_c = X - mean over rows; X_c = U S V^T (thin SVD, S descending); scores = X_c V_k = U_k S_k. Each
    component's sign makes its largest-|v| loading positive (scikit-learn's convention for its full-SVD
    PCA since 1.5), so the scores do not depend on the LAPACK build. Written here instead of importing
    scikit-learn, whose import cost every trial process 0.6 s before its first step.
    """
    centred = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    signs = np.sign(vt[np.arange(len(vt)), np.argmax(np.abs(vt), axis=1)])
    return (u[:, :k] * s[:k]) * signs[:k]


def centred_embeddings(fi: np.ndarray) -> np.ndarray:
    """F_I minus its mean row (C x d, float32): PCA centres its samples before projecting, so comparing
    this control with F_I tells how much of F_PCA's gain is only the centring."""
    fi = np.asarray(fi, dtype=np.float64)
    return (fi - fi.mean(axis=0, keepdims=True)).astype(np.float32)


def random_embeddings(num_classes: int, dim: int, seed: int) -> np.ndarray:
    """Node features that carry no label information (C x dim, float32): standard normal, fixed by the seed."""
    return np.random.default_rng([seed, 7919]).standard_normal((num_classes, dim)).astype(np.float32)


def word_embeddings(
    path_or_npz: str | os.PathLike | Mapping[str, np.ndarray], class_names: Sequence[str]
) -> np.ndarray:
    """Word vectors (C x D float32) in the order of `class_names`, from an .npz with `classes`, `vectors`.

    Names match exactly first, then case-insensitively with '_' and '-' read as spaces
    ("Baseball_Bat" finds "baseball bat"). A name found neither way is an error.
    """
    source = "the given arrays"
    if isinstance(path_or_npz, (str, os.PathLike)):
        source = os.fspath(path_or_npz)
        with np.load(source, allow_pickle=False) as npz:
            classes, vectors = npz["classes"], npz["vectors"]
    else:
        classes, vectors = path_or_npz["classes"], path_or_npz["vectors"]
    classes = [str(c) for c in np.asarray(classes)]
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != len(classes):
        raise ValueError(f"{source}: `vectors` must have one row per entry of `classes`, got {vectors.shape}")

    def loose(name: str) -> str:
        return " ".join(name.lower().replace("_", " ").replace("-", " ").split())

    exact = {c: i for i, c in enumerate(classes)}
    relaxed = {}
    for i, c in enumerate(classes):
        relaxed.setdefault(loose(c), i)
    rows = []
    for name in class_names:
        index = exact.get(name, relaxed.get(loose(name)))
        if index is None:
            raise ValueError(f"class {name!r} has no word vector in {source}; add it to the file or rename the class")
        rows.append(index)
    return vectors[rows].astype(np.float32)
