"""Sizes within the relative tolerance are the same size, by hand."""

from study.reports.ties import SIZE_TOLERANCE, same_size


def test_sizes_within_one_percent_of_the_larger_are_the_same():
    assert SIZE_TOLERANCE == 0.01
    assert same_size(375_280, 375_307)  # the folded head's missing biases: 27 of 375,307
    assert same_size(100, 101) and same_size(101, 100)  # |1| <= 0.01 x 101
    assert not same_size(100, 102)  # |2| > 1.02
    assert same_size(0, 0) and not same_size(0, 1)
    assert same_size(100, 105, tolerance=0.05) and not same_size(100, 106, tolerance=0.05)


def test_smaller_and_dominance_use_the_tolerance() -> None:
    from study.reports.ties import dominates, smaller

    assert not smaller(375_280, 375_307) and smaller(98, 100) and not smaller(100, 98)
    # the direct model 0.1 mAP ahead at 27 more parameters: the same size, so it dominates the trial
    assert dominates(60.55, 375_307, 60.45, 375_280) and not dominates(60.45, 375_280, 60.55, 375_307)
    assert dominates(60.55, 375_307, 60.45, 375_280, tolerance=0) is False  # the exact rule: 27 smaller is smaller
    assert not dominates(60.0, 100, 60.0, 100.5) and not dominates(60.0, 100.5, 60.0, 100)  # a tie in both: kept
    assert dominates(60.0, 98, 60.0, 100)  # equal mAP, 2 % smaller
    assert not dominates(61.0, 110, 60.0, 100)  # more accurate but 10 % larger


def test_the_front_is_the_rows_no_other_row_dominates() -> None:
    from study.reports.ties import front

    # 100, 100.9, 101.8: each the same size as its neighbour (0.9 <= 1.009, 1.018), not the first as the last
    assert front([60.0, 61.0, 62.0], [100.0, 100.9, 101.8]).tolist() == [False, False, True]
    assert front([60.0, 61.0, float("nan")], [100.0, 200.0, 50.0]).tolist() == [True, True, False]
    assert front([], []).tolist() == []


def test_with_tolerance_zero_the_front_is_the_exact_one() -> None:
    import numpy as np

    from study.reports.pareto import pareto_front
    from study.reports.ties import front

    rng = np.random.default_rng(0)
    for _ in range(50):
        points = np.column_stack([rng.integers(50, 60, 30), rng.integers(1, 10, 30)]).astype(float)
        assert front(points[:, 0], points[:, 1], tolerance=0).tolist() == pareto_front(points).tolist()


def test_the_same_accuracy_within_the_measured_noise() -> None:
    from study.reports.ties import same_accuracy, tolerance_text

    assert same_accuracy(-0.2, 0.5) is True and same_accuracy(0.1, 0.5) is False and same_accuracy(-0.5, -0.1) is False
    assert same_accuracy(float("nan"), float("nan")) is None  # one seed: no interval, cannot tell
    assert tolerance_text(0.01) == "1 %" and tolerance_text(0.005) == "0.5 %"
