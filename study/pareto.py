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
