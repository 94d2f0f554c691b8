"""When two results count as the same: sizes within a relative tolerance, mAP within the measured noise.

A head-only space folds every IML-GCN into the backbone plus a bias-free C x d layer: its deployed size
differs from the direct model's by C parameters (the direct head's biases), 0.007 % of a small backbone. An
exact comparison calls that "smaller" and makes the direct model unable ever to dominate a trial: the
answer would hold by construction, not by measurement. The rules every report, plane and comparison uses:

- Sizes a and b are the same size when
      |a - b| <= tolerance x max(|a|, |b|)          (tolerance = SIZE_TOLERANCE, 1 %, unless asked otherwise);
  a is smaller than b when a < b and they are not the same size.
- Result a (mAP m_a, size s_a) dominates b when m_a >= m_b, s_a is smaller than or the same size as s_b,
  and it is better in one: m_a > m_b, or s_a smaller than s_b. Equal mAP at the same size: neither
  dominates (ties are kept). With tolerance 0 this is the exact rule of study.reports.pareto.
- A front is the rows no other row dominates. Dominance within a tolerance is not transitive (100, 100.9,
  101.8 are each the same size as their neighbour, not the first as the last), so the front is computed
  from its definition, all pairs (O(n^2): the fine-tuned trials and direct models, tens to hundreds).
- mAP: with repeats (the training seeds of `imlgcn compare`) two arms have the same accuracy when the 95 %
  interval of their paired difference holds 0; with one measurement each the difference is what was
  measured, and one seed cannot tell it from noise (`same_accuracy` says None: unknown).
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

SIZE_TOLERANCE = 0.01


def same_size(a: float, b: float, tolerance: float = SIZE_TOLERANCE) -> bool:
    """Whether sizes a and b are within `tolerance` of the larger (both 0: the same)."""
    return abs(a - b) <= tolerance * max(abs(a), abs(b))


def smaller(a: float, b: float, tolerance: float = SIZE_TOLERANCE) -> bool:
    """Whether size a is smaller than b by more than the tolerance."""
    return a < b and not same_size(a, b, tolerance)


def dominates(map_a: float, size_a: float, map_b: float, size_b: float, tolerance: float = SIZE_TOLERANCE) -> bool:
    """Whether result a (mAP, size) dominates result b (see the module docstring)."""
    same = same_size(size_a, size_b, tolerance)
    return map_a >= map_b and (size_a <= size_b or same) and (map_a > map_b or (size_a < size_b and not same))


def dominance(m_ap: Sequence[float], sizes: Sequence[float], tolerance: float = SIZE_TOLERANCE) -> np.ndarray:
    """[i, j] = row j dominates row i (the rule of `dominates`, vectorised); rows with a NaN take no part."""
    high, low = np.asarray(m_ap, np.float64), np.asarray(sizes, np.float64)
    valid = ~(np.isnan(high) | np.isnan(low))
    a_high, a_low = high[None, :], low[None, :]  # j: the one that may dominate
    b_high, b_low = high[:, None], low[:, None]  # i
    same = np.abs(a_low - b_low) <= tolerance * np.maximum(np.abs(a_low), np.abs(b_low))
    strictly_smaller = (a_low < b_low) & ~same
    matrix = (a_high >= b_high) & ((a_low <= b_low) | same) & ((a_high > b_high) | strictly_smaller)
    return matrix & valid[None, :] & valid[:, None]


def front(m_ap: Sequence[float], sizes: Sequence[float], tolerance: float = SIZE_TOLERANCE) -> np.ndarray:
    """Boolean mask of the rows no other row dominates, in the input's order; a NaN row is never on it."""
    high, low = np.asarray(m_ap, np.float64), np.asarray(sizes, np.float64)
    if len(high) == 0:
        return np.zeros(0, dtype=bool)
    valid = ~(np.isnan(high) | np.isnan(low))
    return valid & ~dominance(high, low, tolerance).any(axis=1)


def same_accuracy(low: float, high: float) -> bool | None:
    """From the 95 % interval [low, high] of a paired mAP difference: True when it holds 0 (the same
    accuracy within the measured noise), False when it does not, None when it is undefined (one seed)."""
    if math.isnan(low) or math.isnan(high):
        return None
    return low <= 0.0 <= high


def tolerance_text(tolerance: float) -> str:
    """'1 %': the tolerance as a sentence states it."""
    return f"{tolerance * 100:g} %"
