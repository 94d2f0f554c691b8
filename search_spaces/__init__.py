"""Search spaces by name. Each is two define-by-run functions (module-level, so Ray can pickle them):
`head(trial, num_classes)` suggests what screening on cached features can judge (node features, graph,
PCA size, the head's learning rate); `finetune(trial)` what only fine-tuning can judge (the backbone's
learning rate). Every suggested name is a TrialConfig field."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import optuna

from search_spaces import paper, small


@dataclass(frozen=True)
class SearchSpace:
    head: Callable[[optuna.Trial, int], dict[str, Any]]
    finetune: Callable[[optuna.Trial], dict[str, Any]]


SPACES: dict[str, SearchSpace] = {"paper": SearchSpace(paper.space, paper.finetune_space),
                                  "small": SearchSpace(small.space, small.finetune_space)}


def get_space(name: str) -> SearchSpace:
    """The space called `name`; an unknown name fails with the list of known ones."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}: use one of {', '.join(SPACES)}") from None
