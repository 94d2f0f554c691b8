"""A small space for quick runs: the graph knobs and the GCN learning rate, backbone settings fixed.

Suits the GCN-only fast mode, where the backbone learning rate has no effect.
"""

from __future__ import annotations

from typing import Any

import optuna


def space(trial: optuna.Trial, num_classes: int) -> dict[str, Any]:
    """Suggest one small-space point; every name is a TrialConfig field."""
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes}: pass the data set's number of classes (at least 1)")
    embedding = trial.suggest_categorical("embedding", ["fi", "fpca"])
    trial.suggest_float("tau", 0.05, 0.9)
    trial.suggest_float("p", 0.05, 0.95)
    if embedding == "fpca":
        trial.suggest_int("pca_dim", min(2, num_classes), num_classes, log=True)
    trial.suggest_float("gcn_lr", 1e-4, 3e-2, log=True)
    return {}


def finetune_space(trial: optuna.Trial) -> dict[str, Any]:
    """Nothing more: the backbone keeps the base config's learning rate."""
    return {}
