"""Hand-worked checks of trainables.models.label_graph."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.decomposition import PCA

from trainables.models.label_graph import (
    cooccurrence,
    correlation_matrix,
    image_feature_embeddings,
    mlgcn_correlation_matrix,
    normalize_adjacency,
    pca_scores,
    word_embeddings,
)

RESOURCES = Path(__file__).resolve().parents[1] / "trainables" / "resources"

# 3 images: {0,1,2}, {0,1}, {0,2} -> n = [3, 2, 2], M01 = 2, M02 = 2, M12 = 1
TRIANGLE = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 1]])
# 6 images: {0,1} x2, {0} x2, {1}, {2} -> n = [4, 3, 1], M01 = 2, label 2 alone
ISOLATED = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]])


def test_cooccurrence_counts_and_ignores_minus_one():
    m, n = cooccurrence(np.array([[1, 1, -1], [1, 0, 1], [-1, 1, 1]]))
    # presence: {0,1}, {0,2}, {1,2}; -1 counts as absent
    np.testing.assert_array_equal(n, [2, 2, 2])
    np.testing.assert_array_equal(m, [[0, 1, 1], [1, 0, 1], [1, 1, 0]])
    assert m.dtype == np.int64 and n.dtype == np.int64


def test_correlation_matrix_hand_worked_two_neighbours():
    m, n = cooccurrence(TRIANGLE)
    # P = [[., 2/3, 2/3], [1, ., 1/2], [1, 1/2, .]]; tau 0.6 -> row 0 has 2 neighbours, rows 1, 2 one each
    a = correlation_matrix(m, n, tau=0.6, p=0.25)
    expected = [[0.75, 0.125, 0.125], [0.25, 0.75, 0.0], [0.25, 0.0, 0.75]]
    np.testing.assert_allclose(a, expected)
    np.testing.assert_allclose(a.sum(axis=1), 1.0)


def test_correlation_matrix_isolated_row():
    m, n = cooccurrence(ISOLATED)
    # P01 = 2/4 = 0.5, P10 = 2/3; tau 0.4 -> 0 <-> 1 linked; label 2 has no neighbour
    a = correlation_matrix(m, n, tau=0.4, p=0.2)
    np.testing.assert_allclose(a, [[0.8, 0.2, 0.0], [0.2, 0.8, 0.0], [0.0, 0.0, 0.8]])


def test_tau_boundaries():
    m, n = cooccurrence(ISOLATED)
    # tau = 0: every off-diagonal pair is a neighbour (P >= 0) -> p / 2 each
    a = correlation_matrix(m, n, tau=0.0, p=0.2)
    np.testing.assert_allclose(a, [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    # tau = 1: only P = 1 links; images {0,1}, {1}, {2}: P01 = 1/1, P10 = 1/2
    m, n = cooccurrence(np.array([[1, 1, 0], [0, 1, 0], [0, 0, 1]]))
    a = correlation_matrix(m, n, tau=1.0, p=0.3)
    np.testing.assert_allclose(a, [[0.7, 0.3, 0.0], [0.0, 0.7, 0.0], [0.0, 0.0, 0.7]])


def test_p_boundaries_and_label_without_image():
    m, n = cooccurrence(np.array([[1, 1, 0], [1, 1, 0]]))  # label 2 never appears: n[2] = 0
    np.testing.assert_allclose(correlation_matrix(m, n, 0.5, p=0.0), np.eye(3))
    a = correlation_matrix(m, n, 0.5, p=1.0)
    np.testing.assert_allclose(a, [[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    assert np.isfinite(mlgcn_correlation_matrix(m, n)).all()


@pytest.mark.parametrize("tau, p", [(-0.1, 0.2), (1.1, 0.2), (0.1, -0.01), (0.1, 1.5), (float("nan"), 0.2)])
def test_tau_p_out_of_range(tau, p):
    m, n = cooccurrence(TRIANGLE)
    with pytest.raises(ValueError, match="must be in \\[0, 1\\]"):
        correlation_matrix(m, n, tau, p)


def test_shape_errors():
    with pytest.raises(ValueError, match="square"):
        correlation_matrix(np.zeros((2, 3)), np.ones(2), 0.1, 0.2)
    with pytest.raises(ValueError, match="image_counts"):
        correlation_matrix(np.zeros((3, 3)), np.ones(2), 0.1, 0.2)


def test_mlgcn_variant_hand_worked():
    m, n = cooccurrence(TRIANGLE)
    # A = 1[P >= 0.6] = [[0,1,1],[1,0,0],[1,0,0]]; column sums [2, 1, 1]
    # A * 0.25 / (colsum + 1e-6) + I = [[1, .25, .25], [.125, 1, 0], [.125, 0, 1]]
    a = mlgcn_correlation_matrix(m, n, tau=0.6)
    np.testing.assert_allclose(a, [[1, 0.25, 0.25], [0.125, 1, 0], [0.125, 0, 1]], rtol=1e-5)


def test_normalize_adjacency_hand_worked():
    # row sums [4, 1] -> d = [1/2, 1]; A_hat[i, j] = d_i A[j, i] d_j
    a_hat = normalize_adjacency(np.array([[1.0, 3.0], [0.0, 1.0]]))
    np.testing.assert_allclose(a_hat, [[0.25, 0.0], [1.5, 1.0]])
    # a zero row sum gives d = 0 instead of inf: row sums [2, 0], d = [1/sqrt 2, 0]
    np.testing.assert_allclose(normalize_adjacency(np.array([[1.0, 1.0], [0.0, 0.0]])), [[0.5, 0.0], [0.0, 0.0]])


def test_normalize_adjacency_matches_matrix_form():
    a = np.random.default_rng(0).random((5, 5))
    d = np.diag(a.sum(axis=1) ** -0.5)
    np.testing.assert_allclose(normalize_adjacency(a), (a @ d).T @ d)


FEATURES = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
LABELS = np.array([[1, 0, 0], [1, 1, 0], [0, 1, 0], [-1, 1, 0]])


def test_fi_means_and_empty_label_warning():
    # label 0: rows 0, 1 (row 3 is -1) -> [2, 3]; label 1: rows 1, 2, 3 -> [5, 6]; label 2: none -> mean [4, 5]
    with pytest.warns(UserWarning, match="label 2 \\('fork'\\)"):
        fi = image_feature_embeddings(FEATURES, LABELS, class_names=["cup", "knife", "fork"])
    np.testing.assert_allclose(fi, [[2, 3], [5, 6], [4, 5]])
    assert fi.dtype == np.float32


def test_fpca_shape_and_equals_sklearn():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(50, 12))
    labels = (rng.random((50, 6)) < 0.4).astype(int)
    fi = image_feature_embeddings(features, labels)
    fpca = image_feature_embeddings(features, labels, pca_dim=4)
    assert fpca.shape == (6, 4) and fpca.dtype == np.float32
    expected = PCA(n_components=4, svd_solver="full").fit_transform(fi.astype(np.float64))
    signs = np.sign(expected[np.argmax(np.abs(expected), axis=0), range(4)] *
                    fpca[np.argmax(np.abs(expected), axis=0), range(4)])  # scikit-learn < 1.5 chose signs by U
    np.testing.assert_allclose(fpca, expected * signs, atol=1e-5)
    assert image_feature_embeddings(features, labels, pca_dim=6).shape == (6, 6)  # k = C, the paper's choice


def test_pca_scores_by_hand():
    # centred already; variance 8 along y, 2 along x: component 1 = y (scores 0, 0, 2, -2), component 2 = x
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 2.0], [0.0, -2.0]])
    np.testing.assert_allclose(pca_scores(x, 2), [[0, 1], [0, -1], [2, 0], [-2, 0]], atol=1e-12)
    np.testing.assert_allclose(pca_scores(-x, 1), [[0], [0], [-2], [2]], atol=1e-12)  # signs follow the loadings
    np.testing.assert_allclose(pca_scores(x + 5.0, 1), pca_scores(x, 1), atol=1e-12)  # the mean row is removed


@pytest.mark.parametrize("k, dim", [(0, 8), (-1, 8), (4, 8), (3, 2)])
def test_fpca_bad_dimension(k, dim):
    # C = 3 labels: k must be in 1..min(C, d); (4, 8) exceeds C, (3, 2) exceeds d
    features = np.ones((4, dim))
    with pytest.raises(ValueError, match="pca_dim"):
        image_feature_embeddings(features, np.array([[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 0, 1]]), pca_dim=k)


def test_feature_row_mismatch():
    with pytest.raises(ValueError, match="rows"):
        image_feature_embeddings(FEATURES[:3], LABELS)


def test_word_embeddings_order_and_loose_match(tmp_path):
    path = tmp_path / "words.npz"
    vectors = np.arange(9, dtype=np.float64).reshape(3, 3)
    np.savez(path, classes=np.array(["baseball bat", "dog", "cat"]), vectors=vectors)
    out = word_embeddings(path, ["cat", "Baseball_Bat", "dog"])
    np.testing.assert_array_equal(out, vectors[[2, 0, 1]])
    assert out.dtype == np.float32
    with pytest.raises(ValueError, match="'zebra'.*words.npz"):
        word_embeddings(str(path), ["cat", "zebra"])


def test_packaged_glove_vectors():
    with np.load(RESOURCES / "coco_glove300.npz") as npz:
        names = list(npz["classes"][::-1])
        vectors = npz["vectors"][::-1]
    np.testing.assert_array_equal(word_embeddings(RESOURCES / "coco_glove300.npz", names), vectors)
    assert word_embeddings(RESOURCES / "voc_glove300.npz", ["dog", "aeroplane"]).shape == (2, 300)


def test_real_coco_graph_rows():
    with np.load(RESOURCES / "coco2014_train_label_stats.npz") as npz:
        m, n = npz["cooccurrence"], npz["image_counts"]
    a = correlation_matrix(m, n, tau=0.1, p=0.2)
    linked = (a - np.diag(np.diag(a))).sum(axis=1) > 0
    np.testing.assert_allclose(a.sum(axis=1)[linked], 1.0)
    assert np.isfinite(normalize_adjacency(a)).all()


def test_p_zero_control_makes_the_normalised_graph_the_identity():
    """The control arm fpca-p0: with p = 0 every label keeps only itself, so A_hat = I and the GCN
    sees no label context (whatever tau and the co-occurrence are)."""
    m = np.array([[0, 5, 1], [5, 0, 2], [1, 2, 0]])
    n = np.array([10, 8, 4])
    for tau in (0.0, 0.1, 0.9):
        np.testing.assert_allclose(normalize_adjacency(correlation_matrix(m, n, tau, p=0.0)), np.eye(3))
