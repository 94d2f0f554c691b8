"""The Pareto front of a study: maximise one objective (mAP), minimise another (parameter count).

Pure NumPy so it is tested on hand-worked cases in milliseconds; the report and the CLI both use it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def pareto_front(values: pd.DataFrame | np.ndarray, maximize: str = "mAP",
                 minimize: str = "n_params") -> np.ndarray:
    """Boolean mask of the non-dominated rows, in the input's order.

    A row is dominated when another row is at least as good in both objectives and strictly better in
    one, so exact ties are all kept. Rows with a NaN are never on the front and never dominate.
    A DataFrame is read by column name; an array must have shape (n, 2): [maximize, minimize].
    O(n log n).
    """
    high, low = _objectives(values, maximize, minimize)
    front = np.zeros(len(high), dtype=bool)
    valid = np.flatnonzero(~(np.isnan(high) | np.isnan(low)))
    if valid.size == 0:
        return front
    order = valid[np.argsort(low[valid], kind="stable")]
    sorted_low, sorted_high = low[order], high[order]
    # Groups of equal `low`: a row survives if it is the best of its group and beats every smaller group.
    starts = np.flatnonzero(np.r_[True, sorted_low[1:] != sorted_low[:-1]])
    group_best = np.maximum.reduceat(sorted_high, starts)
    group_of = np.repeat(np.arange(starts.size), np.diff(np.r_[starts, sorted_high.size]))
    best_before = np.r_[-np.inf, np.maximum.accumulate(group_best)[:-1]]
    first_group = group_of == 0
    keep = (sorted_high == group_best[group_of]) & (first_group | (sorted_high > best_before[group_of]))
    front[order] = keep
    return front


def _objectives(values: pd.DataFrame | np.ndarray, maximize: str,
                minimize: str) -> tuple[np.ndarray, np.ndarray]:
    """The two objective columns as float arrays; a missing column or a wrong shape is a ValueError."""
    if isinstance(values, pd.DataFrame):
        if len(values) == 0:
            return np.zeros(0), np.zeros(0)
        missing = [c for c in (maximize, minimize) if c not in values.columns]
        if missing:
            raise ValueError(f"pareto_front: no column {missing[0]!r} in {list(values.columns)}: "
                             "pass maximize=/minimize= naming the objective columns")
        table = values[[maximize, minimize]]
        try:
            array = table.to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            raise ValueError(f"pareto_front: columns {maximize!r}/{minimize!r} are not numeric: "
                             "convert them with pd.to_numeric first") from None
    else:
        try:
            array = np.asarray(values, dtype=float)
        except (TypeError, ValueError):
            raise ValueError("pareto_front: the array is not numeric: pass an (n, 2) array of numbers") from None
        if array.size == 0:
            return np.zeros(0), np.zeros(0)
        if array.ndim != 2 or array.shape[1] != 2:
            raise ValueError(f"pareto_front: array of shape {array.shape}: pass shape (n, 2) as "
                             f"[{maximize}, {minimize}] or a DataFrame with those columns")
    return array[:, 0], array[:, 1]


def non_dominated_ranks(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Non-dominated sorting (maximise `high`, minimise `low`): 0 for the front, 1 for the front of the
    rest, ... NaN rows get the last rank. O(n^2) comparisons, vectorised (a few thousand rows is fine)."""
    high, low = np.asarray(high, np.float64), np.asarray(low, np.float64)
    valid = ~(np.isnan(high) | np.isnan(low))
    dominated_by = ((high[None, :] >= high[:, None]) & (low[None, :] <= low[:, None])
                    & ((high[None, :] > high[:, None]) | (low[None, :] < low[:, None])))  # [i, j]: j dominates i
    dominated_by &= valid[None, :] & valid[:, None]
    ranks = np.full(len(high), -1)
    remaining = valid.copy()
    rank = 0
    while remaining.any():
        front = remaining & ~(dominated_by & remaining[None, :]).any(axis=1)
        ranks[front] = rank
        remaining &= ~front
        rank += 1
    ranks[~valid] = rank
    return ranks


def crowding_distance(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance within one front: the ends get inf, the others the sum over both
    objectives of the gap between their neighbours, each objective scaled by its range."""
    points = np.column_stack([np.asarray(high, np.float64), np.asarray(low, np.float64)])
    n = len(points)
    distance = np.zeros(n)
    if n <= 2:
        return np.full(n, np.inf)
    for column in points.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distance[order[[0, -1]]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance


def select_promoted(high: np.ndarray, low: np.ndarray, k: int) -> np.ndarray:
    """Indices of k rows to promote: whole fronts in order of non-dominated rank, the last front cut by
    crowding distance, so the chosen spread across sizes instead of crowding one end (NSGA-II's rule); rows
    with a NaN last. The fronts are peeled one at a time (pareto_front, O(n log n) each) only until k are
    chosen: a sweep screens tens of thousands, and sorting all of them into fronts is O(n^2) per front."""
    high, low = np.asarray(high, np.float64), np.asarray(low, np.float64)
    remaining = ~(np.isnan(high) | np.isnan(low))
    chosen: list[int] = []
    while len(chosen) < k and remaining.any():
        rows = np.flatnonzero(remaining)
        members = rows[pareto_front(np.column_stack([high[rows], low[rows]]))]
        if len(chosen) + len(members) <= k:
            chosen.extend(members.tolist())
        else:
            crowd = crowding_distance(high[members], low[members])
            order = np.lexsort((members, -crowd))  # most isolated first, ties by row
            chosen.extend(members[order[:k - len(chosen)]].tolist())
        remaining[members] = False
    invalid = np.flatnonzero(np.isnan(high) | np.isnan(low))
    chosen.extend(invalid[:max(k - len(chosen), 0)].tolist())
    return np.array(chosen, dtype=int)


def hypervolume(high: np.ndarray, low: np.ndarray, ref_high: float, ref_low: float) -> float:
    """Area dominated by the points and bounded by the reference point (maximise high, minimise low):
    with the front sorted by `low`, the sum of (high_i - high_{i-1}) * (ref_low - low_i), high_0 = ref_high.
    Points that do not beat the reference in both objectives add nothing."""
    high, low = np.asarray(high, np.float64), np.asarray(low, np.float64)
    keep = ~(np.isnan(high) | np.isnan(low)) & (high > ref_high) & (low < ref_low)
    high, low = high[keep], low[keep]
    front = pareto_front(np.column_stack([high, low]))
    order = np.argsort(low[front], kind="stable")
    volume, previous = 0.0, ref_high
    for h, w in zip(high[front][order], low[front][order]):
        volume += (h - previous) * (ref_low - w)
        previous = h
    return float(volume)
