"""Search spaces by name: plain functions `space(trial, num_classes) -> dict` for Ray's OptunaSearch."""

from __future__ import annotations

from typing import Any, Callable

import optuna

from search_spaces import paper, small

Space = Callable[[optuna.Trial, int], dict[str, Any]]

SPACES: dict[str, Space] = {"paper": paper.space, "small": small.space}


def get_space(name: str) -> Space:
    """The space called `name`; an unknown name fails with the list of known ones."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}: use one of {', '.join(SPACES)}") from None
