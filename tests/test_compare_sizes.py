"""The sizes section of `imlgcn compare --arms sizes` on hand-worked results, and the embedded set of a
size-plane study drawn once at its largest resolution."""

from __future__ import annotations

import json
from pathlib import Path

from study.comparison.arms import ARM_SETS
from study.comparison.compare_sizes import sizes_text
from trainables.config import TrialConfig


def _result(m_ap: float, size: int) -> dict:
    return {"mAP": m_ap, "n_params_inference": size}


CONFIGS = {"direct-a": TrialConfig(backbone="test_efficientnet", embedding="none"),
           "fpca-a": TrialConfig(backbone="test_efficientnet", embedding="fpca"),
           "direct-b": TrialConfig(backbone="mobilenetv3_small_100", embedding="none"),
           "fpca-b": TrialConfig(backbone="mobilenetv3_small_100", embedding="fpca")}


def test_the_answer_with_seeds_names_the_smallest_direct_arm_that_reaches_the_best_head() -> None:
    results = {"direct-a": {0: _result(50.0, 100), 1: _result(52.0, 100)},
               "fpca-a": {0: _result(58.0, 98), 1: _result(60.0, 98)},    # mean 59: +8 on its own backbone
               "direct-b": {0: _result(60.0, 1000), 1: _result(61.0, 1000)},  # mean 60.5 >= 59
               "fpca-b": {0: _result(57.0, 998), 1: _result(58.0, 998)}}
    lines = sizes_text(results, CONFIGS).splitlines()
    assert lines[1] == "  direct-a: test_efficientnet@64px, 100 inference parameters, mAP 51.00 ± 1.41"
    gains = lines[lines.index("The GCN head on its own backbone (paired difference in mAP, 95 % interval over seeds):") + 1:]
    assert gains[0].startswith("  fpca-a - direct-a: +8.00 [+8.00, +8.00]")  # the same +8 at both seeds
    assert gains[1].startswith("  fpca-b - direct-b: -3.00 [")
    assert lines[-1].startswith("fpca-a (IML-GCN on test_efficientnet@64px, mean mAP 59.00) against the smallest direct "
                                "arm that reaches it, direct-b (mobilenetv3_small_100@64px, 60.50): 0.10x its inference parameters "
                                "(98 against 1,000), paired difference fpca-a - direct-b -1.50 [")
    assert lines[-1].endswith(": the GCN head reaches that mAP with a smaller model.")


def test_no_direct_arm_reaches_the_best_head() -> None:
    results = {"direct-a": {0: _result(50.0, 100), 1: _result(50.0, 100)},
               "fpca-a": {0: _result(70.0, 98), 1: _result(72.0, 98)},
               "direct-b": {0: _result(60.0, 1000), 1: _result(62.0, 1000)},
               "fpca-b": {0: _result(57.0, 998), 1: _result(58.0, 998)}}
    assert sizes_text(results, CONFIGS).splitlines()[-1].startswith(
        "No direct arm reaches the best IML-GCN arm fpca-a (test_efficientnet@64px, mean mAP 71.00); the best direct "
        "arm, direct-b, is +10.00 [+10.00, +10.00] below it")


def test_the_sizes_arm_set_crosses_the_plane_backbones_with_both_heads() -> None:
    from search_spaces.sizes import PLANE

    arms = ARM_SETS["sizes"]
    assert len(arms) == 2 * len(PLANE["backbone"]) and next(iter(arms)).startswith("direct-")
    assert {(a["backbone"], a["embedding"]) for a in arms.values()} == {
        (b, e) for b in PLANE["backbone"] for e in ("none", "fpca")}


def test_a_plane_study_draws_the_embedded_set_once_at_its_largest_resolution(tmp_path, monkeypatch) -> None:
    from study.driver.preflight import prepare_plane

    monkeypatch.setenv("IMLGCN_CACHE", str(tmp_path / "cache"))
    config = TrialConfig(synthetic_train_images=24, synthetic_val_images=12, image_size=32)
    prepared, classes, _ = prepare_plane(config, "sizes", lambda text: None, tmp_path / "stage1")
    assert prepared.image_size == 32 and len(classes) == 27  # the base config keeps its resolution
    drawn = json.loads((Path(prepared.data_dir) / "synthetic.json").read_text())
    assert drawn["image_size"] == 64  # every resolution of the plane resizes the same 64 px images


def test_a_head_reached_by_its_own_or_a_smaller_direct_arm_gives_no_smaller_model() -> None:
    results = {"direct-a": {0: _result(70.0, 100), 1: _result(72.0, 100)},  # the small direct arm reaches it
               "fpca-a": {0: _result(58.0, 98), 1: _result(60.0, 98)},
               "direct-b": {0: _result(60.0, 1000), 1: _result(61.0, 1000)},
               "fpca-b": {0: _result(64.0, 998), 1: _result(66.0, 998)}}
    last = sizes_text(results, CONFIGS).splitlines()[-1]
    assert last.startswith("fpca-b (IML-GCN on mobilenetv3_small_100@64px, mean mAP 65.00) against the smallest direct "
                           "arm that reaches it, direct-a (test_efficientnet@64px, 71.00): 9.98x its inference parameters")
    assert last.endswith(": in this comparison the GCN head gives no smaller model for that mAP.")


def test_a_direct_arm_within_the_seeds_noise_reaches_the_head_and_sizes_within_1_percent_are_the_same() -> None:
    """fpca-b 65 against direct-b 64.5 (paired difference +1, -2 at two seeds: an interval holding 0) at 998
    against 1,000 parameters: direct-b reaches it, at the same size; direct-a (100) is out of reach."""
    results = {"direct-a": {0: _result(50.0, 100), 1: _result(50.0, 100)},
               "fpca-a": {0: _result(51.0, 98), 1: _result(51.0, 98)},
               "direct-b": {0: _result(63.0, 1000), 1: _result(66.0, 1000)},
               "fpca-b": {0: _result(64.0, 998), 1: _result(64.0, 998)}}
    last = sizes_text(results, CONFIGS).splitlines()[-1]
    assert last.startswith("fpca-b (IML-GCN on mobilenetv3_small_100@64px, mean mAP 64.00) against the smallest direct "
                           "arm that reaches it, direct-b (mobilenetv3_small_100@64px, 64.50): 1.00x its inference "
                           "parameters (998 against 1,000), paired difference fpca-b - direct-b -0.50 [")
    assert last.endswith(": in this comparison the GCN head gives no smaller model for that mAP (the same size within "
                         "1 %).")
    results["direct-b"] = {0: _result(63.0, 1000), 1: _result(63.0, 1000)}  # 1 below at both seeds: [+1, +1]
    assert sizes_text(results, CONFIGS).splitlines()[-1].startswith("No direct arm reaches")
    results["direct-b"] = {0: _result(63.0, 1000), 1: _result(64.5, 1000)}  # d = +1, -0.5: holds 0, mean below
    assert sizes_text(results, CONFIGS).splitlines()[-1].endswith(
        "(the same size within 1 %); direct-b reaches it within the seeds' noise (the interval holds 0).")
