"""Pareto front (maximise mAP, minimise n_params): hand-worked cases and a brute-force cross-check."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from study.reports.pareto import pareto_front


def _brute(points: np.ndarray) -> np.ndarray:
    """The definition, as a double loop: dominated if another is >= in mAP, <= in params, better in one."""
    out = np.zeros(len(points), dtype=bool)
    for i, (m_i, n_i) in enumerate(points):
        if np.isnan(m_i) or np.isnan(n_i):
            continue
        dominated = False
        for j, (m_j, n_j) in enumerate(points):
            if i == j or np.isnan(m_j) or np.isnan(n_j):
                continue
            if m_j >= m_i and n_j <= n_i and (m_j > m_i or n_j < n_i):
                dominated = True
                break
        out[i] = not dominated
    return out


def test_dominated_point_is_dropped() -> None:
    # (mAP, params): row 1 loses to row 0 (same params, lower mAP); row 4 loses to row 2 (both worse).
    points = np.array([[0.8, 10.0], [0.7, 10.0], [0.9, 20.0], [0.6, 5.0], [0.85, 30.0]])
    assert pareto_front(points).tolist() == [True, False, True, True, False]


def test_exact_ties_and_duplicates_are_all_kept() -> None:
    points = np.array([[0.8, 10.0], [0.8, 10.0], [0.8, 10.0], [0.9, 12.0]])
    assert pareto_front(points).tolist() == [True, True, True, True]


def test_same_map_fewer_params_dominates() -> None:
    points = np.array([[0.8, 10.0], [0.8, 11.0], [0.8, 9.0]])
    assert pareto_front(points).tolist() == [False, False, True]


def test_one_point_and_empty_input() -> None:
    assert pareto_front(np.array([[0.5, 3.0]])).tolist() == [True]
    assert pareto_front(np.zeros((0, 2))).shape == (0,)
    assert pareto_front(np.array([])).shape == (0,)
    assert pareto_front(pd.DataFrame({"mAP": [], "n_params": []})).dtype == bool


def test_nan_rows_never_on_front_and_never_dominate() -> None:
    points = np.array([[np.nan, 1.0], [0.99, np.nan], [0.5, 10.0], [np.nan, np.nan]])
    assert pareto_front(points).tolist() == [False, False, True, False]
    assert pareto_front(np.full((3, 2), np.nan)).tolist() == [False, False, False]


def test_dataframe_columns_by_name() -> None:
    frame = pd.DataFrame({"n_params": [10, 20, 5], "trial": ["a", "b", "c"], "mAP": [0.8, 0.7, 0.6]},
                         index=[7, 3, 1])
    assert pareto_front(frame).tolist() == [True, False, True]
    assert pareto_front(frame.rename(columns={"mAP": "f1"}), maximize="f1").tolist() == [True, False, True]
    frame.loc[3, "mAP"] = None
    assert pareto_front(frame).tolist() == [True, False, True]


def test_bad_input_names_the_fix() -> None:
    with pytest.raises(ValueError, match="'mAP'"):
        pareto_front(pd.DataFrame({"map": [0.1], "n_params": [1]}))
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        pareto_front(np.ones((3, 3)))
    with pytest.raises(ValueError, match="not numeric"):
        pareto_front(pd.DataFrame({"mAP": ["x"], "n_params": [1]}))


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 200))
    points = np.column_stack([rng.random(n), rng.random(n) * 1e7])
    if seed % 2:  # coarse rounding: many ties in one or both objectives
        points = np.column_stack([np.round(points[:, 0], 1), np.round(points[:, 1], -6)])
    if seed % 3 == 0:
        points[rng.random((n, 2)) < 0.1] = np.nan
    np.testing.assert_array_equal(pareto_front(points), _brute(points))


def test_non_dominated_ranks_and_crowding_by_hand():
    from study.reports.pareto import crowding_distance, non_dominated_ranks

    #          A     B     C     D     E
    high = [60.0, 62.0, 58.0, 61.0, 55.0]
    low = [10.0, 20.0, 15.0, 25.0, 30.0]
    # front: A (smallest), B (best mAP); then C (dominated by A), D (by B); E last
    assert non_dominated_ranks(high, low).tolist() == [0, 0, 1, 1, 2]
    # three points on a line: the ends get inf, the middle (5 - 1) / 4 + (30 - 10) / 20 = 2.0
    np.testing.assert_allclose(crowding_distance([1.0, 3.0, 5.0], [10.0, 20.0, 30.0]), [np.inf, 2.0, np.inf])


def test_select_promoted_takes_whole_fronts_then_the_spread_of_the_next():
    from study.reports.pareto import select_promoted

    high = [60.0, 62.0, 58.0, 61.0, 55.0, 59.0]
    low = [10.0, 20.0, 15.0, 25.0, 30.0, 22.0]
    # rank 0: rows 0, 1; rank 1: rows 2, 3, 5 (5 = (59, 22): dominated by 1? 62 >= 59 and 20 <= 22: yes)
    assert sorted(select_promoted(high, low, 2).tolist()) == [0, 1]
    chosen = select_promoted(high, low, 4)  # the 2 ends of rank 1 (inf crowding) before its middle
    assert sorted(chosen.tolist()) == [0, 1, 2, 3]


def test_hypervolume_by_hand():
    from study.reports.pareto import hypervolume

    # reference (mAP 50, 40 params); points (60, 10) and (70, 30): 10 * 30 + 10 * 10 = 400
    assert hypervolume([60.0, 70.0, 55.0], [10.0, 30.0, 35.0], 50.0, 40.0) == pytest.approx(400.0)
    assert hypervolume([45.0], [10.0], 50.0, 40.0) == 0.0  # worse than the reference: nothing


def test_moasha_keeps_the_top_third_by_pareto_rank_at_a_rung():
    from study.levels.moasha import keeps, rungs

    assert rungs(9) == [1, 3] and rungs(3) == [1] and rungs(1) == []
    with pytest.raises(ValueError, match="eta >= 2"):
        rungs(3, eta=1)  # would never end
    # the first trial at a rung always continues; then only the top ceil(n / 3)
    assert keeps([(50.0, 10.0)], 0, eta=3)
    points = [(50.0, 10.0), (40.0, 10.0)]  # same size, worse mAP: dominated
    assert not keeps(points, 1, eta=3) and keeps(points, 0, eta=3)
    points = [(50.0, 10.0), (40.0, 10.0), (60.0, 20.0), (45.0, 5.0)]  # front: (50,10), (60,20), (45,5)
    # ceil(4/3) = 2 continue: the front's two best by mAP, (60, 20) and (50, 10)
    assert [keeps(points, i, eta=3) for i in range(4)] == [True, False, True, False]
    # the benchmark's case: a second arrival on the same front with far better mAP is not stopped for
    # being 4 % larger (crowding once kept the first arrival, whatever its mAP)
    points = [(40.12, 473_040), (58.56, 491_472)]
    assert keeps(points, 1, eta=3) and not keeps(points, 0, eta=3)


def test_promotion_peels_fronts_as_the_rank_rule_orders_them_and_scales_to_a_sweep():
    """select_promoted peels fronts only until k are chosen; on random tables with ties and NaNs it picks
    exactly what ranking every row first (non_dominated_ranks) and cutting the last front picks."""
    from study.reports.pareto import crowding_distance, non_dominated_ranks, select_promoted

    rng = np.random.default_rng(0)
    for case in range(200):
        n = int(rng.integers(2, 120))
        high, low = rng.integers(0, 20, n).astype(float), rng.integers(0, 5, n).astype(float)
        if case % 5 == 0:
            high[rng.integers(0, n, 3)] = np.nan
        k = int(rng.integers(1, 20))
        ranks, expected = non_dominated_ranks(high, low), []
        for rank in range(ranks.max() + 1):
            members = np.flatnonzero(ranks == rank)
            if len(expected) + len(members) <= k:
                expected.extend(members.tolist())
            else:
                order = np.lexsort((members, -crowding_distance(high[members], low[members])))
                expected.extend(members[order[:k - len(expected)]].tolist())
            if len(expected) >= k:
                break
        assert select_promoted(high, low, k).tolist() == expected
    # a sweep's screening at one deployed size: every mAP is its own front; the 8 best, not 10,000 fronts
    m_ap = rng.uniform(40, 60, 10_000)
    assert sorted(select_promoted(m_ap, np.full(10_000, 375_280.0), 8)) == sorted(np.argsort(-m_ap)[:8])
