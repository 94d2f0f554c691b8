"""When two results count as the same: sizes within a relative tolerance.

A head-only space folds every IML-GCN into the backbone plus a bias-free C x d layer: its deployed size
differs from the direct model's by C parameters (the direct head's biases), 0.007 % of a small backbone. An
exact comparison calls that "smaller" and makes the direct model unable ever to dominate a trial: the
answer would hold by construction, not by measurement. Sizes a and b are the same size when

    |a - b| <= tolerance x max(|a|, |b|)          (tolerance = SIZE_TOLERANCE, 1 %, unless asked otherwise)
"""

from __future__ import annotations

SIZE_TOLERANCE = 0.01


def same_size(a: float, b: float, tolerance: float = SIZE_TOLERANCE) -> bool:
    """Whether sizes a and b are within `tolerance` of the larger (both 0: the same)."""
    return abs(a - b) <= tolerance * max(abs(a), abs(b))
