"""The range of a seed: numpy's generators take 0..2**32-1, and every seed a user types (the training
seed, the synthetic data's seed, compare's seeds) is checked against it before anything runs. At the
bottom floor, beside backbones.py and embeddings.py, so that the config and the data room both read it."""

from __future__ import annotations

MAX_SEED = 2**32 - 1  # the largest seed numpy takes


def in_range(seed: int) -> bool:
    """Whether numpy (and torch, which takes a wider range) accept `seed`."""
    return 0 <= seed <= MAX_SEED
