"""The answer sentence at every outcome, on hand-made tables (study.reports.answer): a head-only study's
verdict by mAP and size, and a plane's answer, unchanged, with the clause on what one seed cannot tell."""

from __future__ import annotations

import pandas as pd

from study.reports.answer import head_only_answer, plane_noise, trial_arm
from study.reports.plane import answer
from tests.test_plane import DIRECTS, SIZE, TRIALS, _directs, _trials

CMD = "imlgcn compare ARGS"


def _command(arms: dict) -> str:
    _command.arms = arms
    return CMD


def _head_only(m_ap: float, size: float, direct_map: float = 60.0, direct_size: float = 1000.0) -> str:
    trials = _trials([("t1", "finetune", False, "r", 64, "fpca", m_ap, size, direct_map),
                      ("t2", "finetune", True, "r", 64, "fpca", 99.0, 10.0, direct_map),  # stopped early: no result
                      ("t3", "screen", False, "r", 64, "word", 98.0, 10.0, direct_map)])  # screened: not an answer
    base = pd.Series({"mAP": direct_map, SIZE: direct_size})
    return head_only_answer(trials, base, SIZE, _command)


def test_the_verdict_by_accuracy_and_size() -> None:
    noise = f"one seed each, which cannot tell 2.00 mAP from seed noise: `{CMD}` would (3 training seeds, paired)."
    assert _head_only(62.0, 500.0) == (
        "On this data the GCN head beats the direct model: at 0.50x the direct model's size (500 against 1,000 "
        f"inference parameters), the best IML-GCN (trial t1) is 2.00 mAP ahead (62.00 against 60.00); {noise}")
    assert _head_only(62.0, 2000.0).startswith("On this data the GCN head is more accurate than the direct model, "
                                               "and larger: at 2.00x the direct model's size (2,000 against 1,000")
    assert _head_only(58.0, 500.0).startswith("On this data the GCN head is smaller than the direct model, and less "
                                              "accurate: at 0.50x the direct model's size")
    assert _head_only(58.0, 2000.0).startswith("On this data the GCN head does not beat the direct model: at 2.00x")
    assert _head_only(58.0, 995.0).startswith("On this data the GCN head does not beat the direct model: at the same "
                                              "size (995 against 1,000 inference parameters, within 1 %), the direct "
                                              "model is 2.00 mAP ahead (60.00 against the best IML-GCN's 58.00, trial t1)")
    assert _head_only(60.0, 995.0).startswith("On this data the GCN head ties with the direct model: at the same size "
                                              "(995 against 1,000 inference parameters, within 1 %), the best IML-GCN "
                                              "(trial t1) and the direct model have the same mAP (60.00); one seed "
                                              "each, which cannot tell 0.00 mAP")
    assert _head_only(60.0, 500.0).startswith("On this data the GCN head beats the direct model: at 0.50x")
    assert _command.arms == {"direct": {"embedding": "none"},
                             "trial-t1": {"image_size": 64, "backbone": "r", "embedding": "fpca"}}


def test_no_direct_model_or_no_finished_head_still_answers() -> None:
    trials = _trials([("t1", "finetune", False, "r", 64, "fpca", 61.0, 900.0, float("nan"))])
    assert head_only_answer(trials, None, SIZE, _command) == (
        "The best IML-GCN (trial t1) reaches 61.00 mAP at 900 inference parameters; the study has no direct model "
        "to compare it with.")
    assert head_only_answer(trials.assign(stopped_early=True), None, SIZE, _command).startswith(
        "No IML-GCN trial ran all its epochs")
    unknown = head_only_answer(trials, pd.Series({"mAP": 60.0, SIZE: float("nan")}), SIZE, _command)
    assert unknown.startswith("On this data the GCN head is more accurate than the direct model: with inference "
                              "parameters not known for both, the best IML-GCN (trial t1) is 1.00 mAP ahead")


def test_a_plane_keeps_its_answer_and_adds_what_one_seed_cannot_tell() -> None:
    """Sizes 10x apart (tests/test_plane.py): the answer is today's, the clause comes before its full stop,
    and the command compares the best trial with its own point's direct model and the one that reaches it."""
    plain = answer(TRIALS, DIRECTS, SIZE)
    noise = plane_noise(TRIALS, DIRECTS, SIZE, _command)
    assert noise.startswith("one seed each, which cannot tell 2.00 mAP from seed noise")  # t2 58 against b's 60
    assert answer(TRIALS, DIRECTS, SIZE, noise) == f"{plain[:-1]}; {noise}."
    assert list(_command.arms) == ["direct-b@32px", "trial-t2"]  # t2 is on b: its own point reaches it
    trials = _trials([("t1", "finetune", False, "a", 32, "fpca", 62.0, 98, 50.0)])
    directs = _directs([("a", 32, 50.0, 100), ("b", 32, 63.0, 1000), ("c", 64, 65.0, 5000)])
    plane_noise(trials, directs, SIZE, _command)
    assert list(_command.arms) == ["direct-a@32px", "trial-t1", "direct-b@32px"]
    assert _command.arms["direct-b@32px"] == {"backbone": "b", "image_size": 32, "embedding": "none"}
    assert answer(trials, directs, SIZE).endswith("the GCN head reaches that mAP with a smaller model.")


def test_a_trial_arm_holds_the_searched_values_that_apply() -> None:
    row = {"embedding": "word", "pca_dim": 5, "tau": 0.3, "p": float("nan"), "gcn_lr": 0.001, "backbone": "",
           "image_size": pd.NA}
    assert trial_arm(row) == {"embedding": "word", "tau": 0.3, "gcn_lr": 0.001}  # word takes no pca_dim
