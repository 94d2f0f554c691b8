"""The accuracy-versus-size plane on hand-worked tables: the front over trials and direct models together,
the direct model that dominates a trial, the GCN head's gain per point and the answer sentence."""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.reports.plane import answer, dominating_direct, format_plane, gains, plane_front

SIZE = "n_params_inference"


def _trials(rows: list[tuple]) -> pd.DataFrame:
    """(trial_id, level, stopped_early, backbone, image_size, embedding, mAP, size, direct_mAP)"""
    return pd.DataFrame(rows, columns=["trial_id", "level", "stopped_early", "backbone", "image_size", "embedding",
                                       "mAP", SIZE, "direct_mAP"])


def _directs(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["backbone", "image_size", "mAP", SIZE])


DIRECTS = _directs([("a", 32, 50.0, 100), ("b", 32, 60.0, 1000)])
TRIALS = _trials([
    ("t1", "finetune", False, "a", 32, "fpca", 55.0, 98, 50.0),   # beats A: on the front, and A is not
    ("t2", "finetune", False, "b", 32, "fpca", 58.0, 1000, 60.0),  # B is as large and more accurate
    ("t3", "finetune", False, "a", 32, "fi", 45.0, 100, 50.0),    # A is as large and more accurate
    ("t4", "screen", False, "a", 32, "fpca", 70.0, 50, 50.0),     # screened: not on the plane
    ("t5", "finetune", True, "b", 32, "fpca", 80.0, 1000, 60.0),  # stopped early: no full result
])


def test_the_front_is_over_trials_and_direct_models_together() -> None:
    on_trials, on_directs = plane_front(TRIALS, DIRECTS, SIZE)
    assert on_trials.tolist() == [True, False, False, False, False]
    assert on_directs.tolist() == [False, True]


def test_a_dominated_trial_names_the_smallest_direct_model_that_dominates_it() -> None:
    assert dominating_direct(TRIALS, DIRECTS, SIZE) == ["", "direct b@32px", "direct a@32px", "", ""]
    both = _directs([("a", 32, 50.0, 100), ("b", 32, 60.0, 1000), ("c", 64, 70.0, 400)])
    assert dominating_direct(TRIALS.iloc[[1]], both, SIZE) == ["direct c@64px"]  # smaller of the two


def test_the_gain_of_the_head_per_point() -> None:
    table = gains(TRIALS, DIRECTS)
    assert table["model"].tolist() == ["a@32px", "b@32px"]
    assert table["best IML-GCN mAP"].tolist() == [55.0, 58.0]  # t5 stopped early, t4 only screened
    np.testing.assert_allclose(table["difference"], [5.0, -2.0])
    assert table["trials"].tolist() == [2, 1]


def test_the_answer_when_the_head_gives_no_smaller_model() -> None:
    assert answer(TRIALS, DIRECTS, SIZE) == (
        "The direct model on b@32px (mAP 60.00) reaches the best IML-GCN mAP 58.00 (on b@32px) with 1,000 inference "
        "parameters, 1.00x IML-GCN's 1,000: in this study the GCN head gives no smaller model for that mAP.")
    # the same point's folded head is smaller by the direct model's bias only: no gain of the GCN
    smaller = TRIALS.assign(**{SIZE: [98, 998, 100, 50, 1000]})
    assert answer(smaller, DIRECTS, SIZE).startswith("The direct model on b@32px (mAP 60.00) reaches the best IML-GCN "
                                                     "mAP 58.00 (on b@32px) with 1,000 inference parameters, 1.00x")


def test_the_answer_when_the_head_matches_a_larger_direct_model() -> None:
    trials = _trials([("t1", "finetune", False, "a", 32, "fpca", 62.0, 98, 50.0)])
    directs = _directs([("a", 32, 50.0, 100), ("b", 32, 63.0, 1000), ("c", 64, 65.0, 5000)])
    assert answer(trials, directs, SIZE) == ("IML-GCN on a@32px (mAP 62.00) matches the direct model on b@32px "
                                             "(mAP 63.00) at 0.10x its inference parameters (98 against 1,000): the "
                                             "GCN head reaches that mAP with a smaller model.")


def test_the_answer_when_no_direct_model_reaches_it_or_no_head_finished() -> None:
    trials = _trials([("t1", "finetune", False, "a", 32, "fpca", 99.0, 98, 50.0)])
    assert answer(trials, DIRECTS, SIZE).startswith("No direct model in the study reaches the best IML-GCN mAP 99.00 "
                                                    "(IML-GCN on a@32px, 98 inference parameters); the best direct "
                                                    "model, on b@32px, reaches 60.00.")
    assert answer(TRIALS.iloc[[3, 4]], DIRECTS, SIZE).startswith("No IML-GCN trial ran all its epochs")


def test_the_printed_plane_lists_every_direct_model_and_ends_with_the_answer() -> None:
    trials = TRIALS.assign(pareto=plane_front(TRIALS, DIRECTS, SIZE)[0], n_params=[500, 1400, 480, 450, 1400])
    text = format_plane(trials, DIRECTS, np.array([False, True]), ["backbone", "embedding"], SIZE, screened=1)
    lines = text.splitlines()
    assert lines[0] == ("Pareto front over 3 fine-tuned trials and 2 direct models (1 head configurations screened "
                        "first), on mAP and inference parameters: 1 trials and 1 direct models")
    assert "direct a@32px" in lines[2] and "direct b@32px" in lines[3] and lines[3].rstrip().endswith("yes")
    assert "trial t1" in lines[4] and "+5.00" in lines[4]  # against its own point's direct model
    assert lines[-1] == answer(TRIALS, DIRECTS, SIZE)
