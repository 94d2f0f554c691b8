"""Hand-worked checks of trainables.training.metrics (percent outputs)."""

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from trainables.training.metrics import average_precision, multilabel_metrics


def test_ap_hand_worked():
    # ranks 1..4 = [pos, neg, pos, neg]; precision at the positives: 1/1 and 2/3
    scores = np.array([[0.9], [0.8], [0.7], [0.6]])
    targets = np.array([[1], [0], [1], [0]])
    out = multilabel_metrics(scores, targets)
    assert out["mAP"] == pytest.approx(100 * (1 / 1 + 2 / 3) / 2)


def test_ignored_target_leaves_ranking():
    # [1, -1, 1] with the middle ignored: positives at ranks 1 and 2 -> AP = 1
    # (were it a negative, AP would be (1 + 2/3) / 2)
    scores = np.array([[0.9], [0.8], [0.7]])
    assert average_precision(scores, np.array([[1.0], [-1.0], [1.0]]))[0] == pytest.approx(1.0)
    assert average_precision(scores, np.array([[1.0], [0.0], [1.0]]))[0] == pytest.approx(5 / 6)


def test_ties_use_stable_order():
    # equal scores: the earlier row ranks first -> [neg, pos] gives AP = 1/2, [pos, neg] gives 1
    scores = np.array([[0.5], [0.5]])
    assert average_precision(scores, np.array([[0.0], [1.0]]))[0] == pytest.approx(0.5)
    assert average_precision(scores, np.array([[1.0], [0.0]]))[0] == pytest.approx(1.0)


def test_class_without_positive_is_skipped_and_counted():
    # class 0: AP 1 (pos ranked first); class 1: no positive -> left out of mAP
    scores = np.array([[0.9, 0.3], [0.2, 0.8]])
    targets = np.array([[1, 0], [0, 0]])
    out = multilabel_metrics(scores, targets)
    assert out["mAP"] == pytest.approx(100.0)
    assert out["num_classes_evaluated"] == 1 and out["num_classes_skipped"] == 1
    # CR only over classes with Ng > 0: class 0 recall 1 -> 100; CP over all classes: (1 + 0) / 2
    assert out["CR"] == pytest.approx(100.0)
    assert out["CP"] == pytest.approx(50.0)


def test_precision_recall_hand_worked():
    # prediction at 0.5: class 0 -> [1,0,0] (Nc 1, Np 1, Ng 2); class 1 -> [1,1,1] (Nc 1, Np 3, Ng 1)
    scores = np.array([[0.9, 0.6], [0.4, 0.7], [0.2, 0.8]])
    targets = np.array([[1, 0], [1, 1], [0, 0]])
    out = multilabel_metrics(scores, targets)
    cp, cr = (1 + 1 / 3) / 2, (0.5 + 1) / 2  # 2/3, 3/4
    op, orec = 2 / 4, 2 / 3
    assert out["CP"] == pytest.approx(100 * cp)
    assert out["CR"] == pytest.approx(100 * cr)
    assert out["CF1"] == pytest.approx(100 * 12 / 17)  # 2 (2/3)(3/4) / (17/12)
    assert out["OP"] == pytest.approx(100 * op)
    assert out["OR"] == pytest.approx(100 * orec)
    assert out["OF1"] == pytest.approx(100 * 4 / 7)  # 2 (1/2)(2/3) / (7/6)


def test_cp_is_zero_for_class_never_predicted():
    # class 1 never reaches 0.5: Np = 0 -> its precision counts as 0; OP uses only class 0
    scores = np.array([[0.9, 0.1], [0.8, 0.2]])
    targets = np.array([[1, 1], [0, 0]])
    out = multilabel_metrics(scores, targets)
    assert out["CP"] == pytest.approx(100 * (0.5 + 0) / 2)  # class 0: 1 of 2 predicted is right
    assert out["OP"] == pytest.approx(50.0)
    assert out["CR"] == pytest.approx(100 * (1 + 0) / 2)


def test_no_prediction_at_all_gives_zero_precision():
    out = multilabel_metrics(np.array([[0.1, 0.2]]), np.array([[1, 0]]))
    assert out["OP"] == 0.0 and out["CP"] == 0.0 and out["OF1"] == 0.0 and out["CF1"] == 0.0


def test_top3_on_image_with_four_positives():
    # 4 positives above 0.5 but only the 3 highest count in top-3; class 4 has no positive
    scores = np.array([[0.9, 0.8, 0.7, 0.6, 0.1]])
    targets = np.array([[1, 1, 1, 1, 0]])
    out = multilabel_metrics(scores, targets)
    assert out["OP"] == pytest.approx(100.0) and out["OR"] == pytest.approx(100.0)
    assert out["OP_top3"] == pytest.approx(100.0)  # 3 predicted, 3 right
    assert out["OR_top3"] == pytest.approx(75.0)  # 3 of 4
    assert out["CP_top3"] == pytest.approx(60.0)  # (1 + 1 + 1 + 0 + 0) / 5
    assert out["CR_top3"] == pytest.approx(75.0)  # (1 + 1 + 1 + 0) / 4, class 4 excluded


def test_top3_still_needs_threshold():
    # top-3 = classes 0, 1, 2 but class 2 (0.3) is under 0.5 -> not predicted
    out = multilabel_metrics(np.array([[0.9, 0.6, 0.3, 0.1]]), np.array([[1, 0, 1, 0]]))
    assert out["OP_top3"] == pytest.approx(50.0) and out["OR_top3"] == pytest.approx(50.0)


def test_map_matches_sklearn_without_ties():
    rng = np.random.default_rng(0)
    scores = rng.random((200, 7))
    targets = (rng.random((200, 7)) < 0.3).astype(int)
    expected = np.mean([average_precision_score(targets[:, c], scores[:, c]) for c in range(7)])
    assert multilabel_metrics(scores, targets)["mAP"] == pytest.approx(100 * expected)


def test_all_keys_present_and_floats():
    rng = np.random.default_rng(1)
    out = multilabel_metrics(rng.random((10, 4)), (rng.random((10, 4)) < 0.5).astype(int))
    assert isinstance(out["mAP"], float)
    for key in ("CP", "CR", "CF1", "OP", "OR", "OF1"):
        assert isinstance(out[key], float) and isinstance(out[key + "_top3"], float)
    assert isinstance(out["num_classes_evaluated"], int)


@pytest.mark.parametrize(
    "scores, targets, match",
    [
        (np.zeros((2, 3)), np.zeros((2, 2)), "shape"),
        (np.zeros(3), np.zeros(3), "N x C"),
        (np.array([[np.nan, 0.1]]), np.array([[1, 0]]), "NaN"),
        (np.array([[2.0, -1.0]]), np.array([[1, 0]]), "sigmoid"),
        (np.array([[0.2, 0.1]]), np.array([[2, 0]]), "targets must"),
        (np.array([[0.2, 0.1]]), np.array([[0, 0]]), "no class has a positive"),
    ],
)
def test_bad_inputs_raise(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        multilabel_metrics(scores, targets)


def _literal_ap(scores, targets):
    """The definition, one image at a time: stable order on -score, ignored images skipped."""
    hits = rank = 0
    total = []
    for i in sorted(range(len(scores)), key=lambda i: -scores[i]):  # Python's sort is stable
        if targets[i] == -1:
            continue
        rank += 1
        if targets[i] == 1:
            hits += 1
            total.append(hits / rank)
    return sum(total) / len(total)


def test_ap_matches_literal_definition_with_ties_and_ignored():
    rng = np.random.default_rng(2)
    scores = np.round(rng.random((60, 5)), 1)  # many ties -> exercises the stable-sort path
    targets = rng.choice([-1, 0, 1], size=(60, 5), p=[0.1, 0.6, 0.3])
    expected = [_literal_ap(scores[:, c], targets[:, c]) for c in range(5)]
    np.testing.assert_allclose(average_precision(scores, targets), expected)
    no_ties = rng.permutation(300)[:60, None] / 300 * np.ones((1, 5)) + np.arange(5) * 1e-4
    expected = [_literal_ap(no_ties[:, c], targets[:, c]) for c in range(5)]
    np.testing.assert_allclose(average_precision(no_ties, targets), expected)


def test_top3_ties_go_to_lower_class_index():
    # scores 0.9, then 0.7 tied on classes 1, 2, 3: top-3 = classes 0, 1, 2; class 3 misses out
    out = multilabel_metrics(np.array([[0.9, 0.7, 0.7, 0.7]]), np.array([[0, 0, 0, 1]]))
    assert out["OR"] == pytest.approx(100.0) and out["OR_top3"] == pytest.approx(0.0)


def test_ignored_pairs_leave_counts():
    # class 0 image 1 is ignored although predicted: Np = 1 (image 0), Nc = 1 -> precision 100
    out = multilabel_metrics(np.array([[0.9], [0.8]]), np.array([[1], [-1]]))
    assert out["OP"] == pytest.approx(100.0) and out["OR"] == pytest.approx(100.0)


def test_ap_matches_literal_definition_on_many_small_tied_cases():
    rng = np.random.default_rng(3)
    for _ in range(200):
        n, c = rng.integers(1, 25), rng.integers(1, 4)
        scores = np.round(rng.random((n, c)), rng.integers(0, 3))  # 0 decimals: scores are 0 or 1
        targets = rng.choice([-1, 0, 1], size=(n, c))
        expected = [_literal_ap(s, t) if (t == 1).any() else np.nan for s, t in zip(scores.T, targets.T)]
        np.testing.assert_allclose(average_precision(scores, targets), expected)
