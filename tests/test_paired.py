"""Paired statistics of `imlgcn compare`, on hand-worked numbers."""

import math

import numpy as np
import pytest

from study.comparison.paired import compare_table, format_table, frequency_groups, group_differences, mean_sd, paired_interval

T_975_2DF = 4.302652729911275  # Student's t quantile 0.975 with 2 degrees of freedom
T_975_1DF = 12.706204736174707


def test_mean_and_sample_sd():
    assert mean_sd([1, 2, 3, 4]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    assert math.isnan(mean_sd([7.0])[1])


def test_paired_interval_by_hand():
    # d = (1, 2, 3): mean 2, sd 1, half width t * 1 / sqrt(3)
    mean, low, high = paired_interval([11, 12, 13], [10, 10, 10])
    half = T_975_2DF / math.sqrt(3)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))
    # pairing matters: a shared seed effect cancels, so the interval is zero-width
    assert paired_interval([50, 60, 70], [49, 59, 69]) == pytest.approx((1.0, 1.0, 1.0))
    mean, low, high = paired_interval([3.0], [1.0])
    assert mean == 2.0 and math.isnan(low) and math.isnan(high)


def test_frequency_groups_are_thirds_by_training_images():
    groups = frequency_groups([10, 50, 30, 20, 40, 60])
    assert list(groups) == ["tail", "head", "middle", "tail", "middle", "head"]


def test_group_differences_average_classes_within_a_seed_then_pair():
    arm = [[1.0, 2.0, np.nan], [3.0, 4.0, 5.0]]  # seeds x classes; class 2 has no positive in seed 0
    ref = [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]
    out = group_differences(arm, ref, ["head", "tail", "tail"])
    # head: seeds give 1 and 3 -> mean 2, sd sqrt(2), half = t(1 df) * sqrt(2) / sqrt(2)
    assert out["head"] == pytest.approx((2.0, 2.0 - T_975_1DF, 2.0 + T_975_1DF))
    # tail: seed 0 -> 2 (NaN skipped), seed 1 -> 4.5
    assert out["tail"][0] == pytest.approx(3.25) and "middle" not in out


def test_compare_table_and_its_text():
    results = {"direct": {0: {"mAP": 50, "CF1": 40, "OF1": 45, "class_AP": [60, 40, 20]},
                          1: {"mAP": 52, "CF1": 42, "OF1": 47, "class_AP": [62, 42, 22]}},
               "fpca": {0: {"mAP": 51, "CF1": 41, "OF1": 46, "class_AP": [60, 41, 23]},
                        1: {"mAP": 54, "CF1": 43, "OF1": 48, "class_AP": [63, 44, 25]}}}
    rows = compare_table(results, "direct", ["head", "middle", "tail"])
    assert [r["arm"] for r in rows] == ["direct", "fpca"] and "d_mAP" not in rows[0]
    assert rows[1]["mAP"] == 52.5 and rows[1]["d_mAP"] == pytest.approx(1.5)  # d = (1, 2)
    assert rows[1]["d_AP_tail"] == pytest.approx(3.0) and rows[1]["d_AP_head"] == pytest.approx(0.5)
    text = format_table(rows, "direct", "title")
    assert text.splitlines()[0] == "title" and "+1.50 [" in text
    assert text.splitlines()[-1] == ("mAP against direct (95 % interval holding 0 = the same): the same within the "
                                     "seeds' noise: fpca")  # d = (1, 2): +1.50 -/+ 6.35
    with pytest.raises(ValueError, match="arm 'fpca' has no result for seed 1"):
        compare_table({**results, "fpca": {0: results["fpca"][0]}}, "direct", ["head", "middle", "tail"])


def test_the_verdict_line_reads_each_arm_by_its_interval():
    from study.comparison.paired import verdict

    rows = [{"arm": "direct"}, {"arm": "fpca", "d_mAP": 1.5, "d_mAP_low": 0.5, "d_mAP_high": 2.5},
            {"arm": "word", "d_mAP": 0.3, "d_mAP_low": -0.4, "d_mAP_high": 1.0},
            {"arm": "fi", "d_mAP": -1.0, "d_mAP_low": -1.5, "d_mAP_high": -0.5}]
    assert verdict(rows, "direct") == ("mAP against direct (95 % interval holding 0 = the same): higher: fpca; "
                                       "the same within the seeds' noise: word; lower: fi")
    one_seed = [{"arm": "direct"}, {"arm": "fpca", "d_mAP": 0.1, "d_mAP_low": math.nan, "d_mAP_high": math.nan}]
    assert verdict(one_seed, "direct").endswith("not told from noise with one seed: fpca")
