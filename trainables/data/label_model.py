"""Label sets with COCO's real structure: a maximum-entropy (pairwise, Ising) model of its 80 labels.

The model is the distribution of highest entropy over label sets y in {0, 1}^80 (with at least one
label, as COCO keeps only images with an annotation) whose label frequencies E[y_i] and pairwise
frequencies E[y_i y_j] equal COCO train2014's:

    P(y) = exp(sum_i h_i y_i + sum_{i<j} J_ij y_i y_j) / Z   for y != 0,   P(0) = 0.

Such a distribution exists because COCO's own label sets have exactly these moments; a Gaussian
copula cannot reach COCO's near-certain implications (P(person | skateboard) = 0.98) once its
correlation matrix is made positive definite. The parameters h, J are fitted once by persistent
contrastive divergence (moment matching with Gibbs chains) and shipped in
`resources/coco2014_label_model.npz`; `python -m trainables.data.label_model` refits them from the
shipped statistics. Sampling is Gibbs sampling from independent chains.

A smaller class set is a restriction of these label sets (labels outside it dropped, images left
empty dropped), so COCO's conditional probabilities P(j | i) hold within any subset. The control
draws each label independently with the frequencies of the structured set.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

RESOURCES = Path(__file__).parents[1] / "resources"
STATS_PATH = RESOURCES / "coco2014_train_label_stats.npz"
MODEL_PATH = RESOURCES / "coco2014_label_model.npz"
COCO_TRAIN_IMAGES = 82081  # train2014 images with at least one annotation: the statistics' denominator
SWEEPS = 60  # Gibbs sweeps per chain before its state is taken as a sample (checked by the tests' tolerances)


def coco_statistics() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(class names in ML-GCN's alphabetical order, image counts n_i, co-occurrence counts M_ij)."""
    with np.load(STATS_PATH, allow_pickle=False) as stats:
        return ([str(c) for c in stats["classes"]], stats["image_counts"].astype(np.float64),
                stats["cooccurrence"].astype(np.float64))


def load_model() -> tuple[np.ndarray, np.ndarray]:
    """The shipped (h, J), in the order of `coco_statistics()`."""
    with np.load(MODEL_PATH, allow_pickle=False) as model:
        return model["h"].astype(np.float64), model["J"].astype(np.float64)


def _gibbs_sweep(y: np.ndarray, h: np.ndarray, coupling: np.ndarray, uniform: np.ndarray, count: np.ndarray) -> np.ndarray:
    """One sweep over the labels of every chain (rows of y, in place); a chain never becomes empty.

    P(y_i = 1 | rest) = sigmoid(h_i + sum_j J_ij y_j); when every other label is 0, y_i = 1 (P(0) = 0).
    Returns the updated label counts per chain.
    """
    for i in range(y.shape[1]):
        field = h[i] + y @ coupling[:, i]
        new = (uniform[:, i] < 1.0 / (1.0 + np.exp(-field))).astype(y.dtype)
        others = count - y[:, i]
        new[others == 0] = 1
        count = others + new
        y[:, i] = new
    return count


def sample(h: np.ndarray, coupling: np.ndarray, num: int, rng: np.random.Generator, sweeps: int = SWEEPS) -> np.ndarray:
    """`num` label sets (num x C, 0/1 int8), each the state of its own chain after `sweeps` sweeps."""
    start = 1.0 / (1.0 + np.exp(-h))
    y = (rng.random((num, len(h))) < start).astype(np.float64)
    y[y.sum(axis=1) == 0, int(np.argmax(h))] = 1
    count = y.sum(axis=1)
    for _ in range(sweeps):
        count = _gibbs_sweep(y, h, coupling, rng.random(y.shape), count)
    return y.astype(np.int8)


def independent(frequencies: np.ndarray, num: int, rng: np.random.Generator) -> np.ndarray:
    """The control: labels drawn independently, empty sets dropped, with these frequencies after the drop.

    With q_i the probability of label i and p0 = prod(1 - q_i), the frequency among non-empty sets is
    q_i / (1 - p0): q is found by the fixed point q_i = f_i (1 - p0(q)).
    """
    q = independent_probabilities(frequencies)
    out = np.zeros((0, len(q)), np.int8)
    while len(out) < num:
        draw = (rng.random((2 * (num - len(out)) + 16, len(q))) < q).astype(np.int8)
        out = np.concatenate([out, draw[draw.sum(axis=1) > 0]])
    return out[:num]


def independent_probabilities(frequencies: np.ndarray) -> np.ndarray:
    """q with q_i / (1 - prod(1 - q)) = f_i: the draw probabilities that give frequencies f among non-empty
    sets. In the control, P(j | i) = q_j for i != j (an image with i is never dropped)."""
    f = np.clip(np.asarray(frequencies, np.float64), 1e-9, 1 - 1e-9)
    q = f.copy()
    for _ in range(200):
        q = np.clip(f * (1 - np.prod(1 - q)), 1e-12, 1 - 1e-12)
    return q


def fit(image_counts: np.ndarray, cooccurrence: np.ndarray, num_images: int, iterations: int = 3000,
        chains: int = 10000, learning_rate: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Fit (h, J) so the model's E[y_i] = n_i / N and E[y_i y_j] = M_ij / N (persistent contrastive
    divergence with Adam steps on the moment differences, which are the log-likelihood's gradient;
    the parameters are averaged over the last third of the iterations)."""
    rng = np.random.default_rng(seed)
    target_p = np.asarray(image_counts, np.float64) / num_images
    target_pair = np.asarray(cooccurrence, np.float64) / num_images
    num_labels = len(target_p)
    h = np.log(target_p / (1 - target_p))
    coupling = np.zeros((num_labels, num_labels))
    y = (rng.random((chains, num_labels)) < target_p).astype(np.float64)
    y[y.sum(axis=1) == 0, 0] = 1
    count = y.sum(axis=1)
    first, second = [np.zeros_like(h), np.zeros_like(coupling)], [np.zeros_like(h), np.zeros_like(coupling)]
    mean_h, mean_coupling, averaged = np.zeros_like(h), np.zeros_like(coupling), 0
    for step in range(1, iterations + 1):
        count = _gibbs_sweep(y, h, coupling, rng.random(y.shape), count)
        grad_pair = target_pair - (y.T @ y) / chains
        np.fill_diagonal(grad_pair, 0.0)
        rate = learning_rate * min(1.0, 2.0 * (1 - step / iterations) + 0.05)
        for k, (grad, param) in enumerate(((target_p - y.mean(axis=0), h), (grad_pair, coupling))):
            first[k] = 0.9 * first[k] + 0.1 * grad
            second[k] = 0.999 * second[k] + 0.001 * grad * grad
            param += rate * (first[k] / (1 - 0.9 ** step)) / (np.sqrt(second[k] / (1 - 0.999 ** step)) + 1e-8)
        if step > iterations * 2 // 3:
            mean_h += h
            mean_coupling += coupling
            averaged += 1
    return mean_h / averaged, mean_coupling / averaged


def main() -> None:
    """Refit the shipped model from the shipped statistics (about a minute on one core)."""
    _, counts, cooc = coco_statistics()
    h, coupling = fit(counts, cooc, COCO_TRAIN_IMAGES)
    np.savez(MODEL_PATH, h=h.astype(np.float32), J=coupling.astype(np.float32))
    print(f"wrote {MODEL_PATH}")


if __name__ == "__main__":
    main()
