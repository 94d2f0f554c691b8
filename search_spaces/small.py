"""A small space for quick runs: the graph knobs and the GCN learning rate, backbone settings fixed.

Suits the GCN-only fast mode, where the backbone learning rate has no effect.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.paper import head_space

if TYPE_CHECKING:  # annotations only: `imlgcn --help` lists the spaces without importing Optuna
    import optuna


def space(trial: optuna.Trial, num_classes: int) -> dict[str, Any]:
    """Suggest one small-space point: the paper's head space without word embeddings."""
    return head_space(trial, num_classes, ["fi", "fpca"])


def finetune_space(trial: optuna.Trial) -> dict[str, Any]:
    """Nothing more: the backbone keeps the base config's learning rate."""
    return {}
