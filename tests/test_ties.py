"""Sizes within the relative tolerance are the same size, by hand."""

from study.reports.ties import SIZE_TOLERANCE, same_size


def test_sizes_within_one_percent_of_the_larger_are_the_same():
    assert SIZE_TOLERANCE == 0.01
    assert same_size(375_280, 375_307)  # the folded head's missing biases: 27 of 375,307
    assert same_size(100, 101) and same_size(101, 100)  # |1| <= 0.01 x 101
    assert not same_size(100, 102)  # |2| > 1.02
    assert same_size(0, 0) and not same_size(0, 1)
    assert same_size(100, 105, tolerance=0.05) and not same_size(100, 106, tolerance=0.05)
