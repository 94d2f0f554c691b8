"""The accuracy-versus-size plane on the embedded data (`--space sizes`): backbones that train from scratch
on CPU at small resolutions, spanning 15x in inference parameters, crossed with the head's knobs.

`PLANE` lists the stage-1 settings the space samples from: the study trains stage 1 and the same-budget
direct model once for each (backbone, resolution) before any trial, and every trial (screened or
fine-tuned) samples one of them with its head. timm's models without their classifier (d = pooled features;
seconds of one training epoch over the 2,000 training images on one core of the 2-core machine, batch 64):
| backbone | parameters | d | epoch at 32 px | at 64 px |
| --- | --- | --- | --- | --- |
| test_efficientnet | 0.10 M | 256 | 2.3 s | 7.9 s |
| test_resnet | 0.37 M | 96 | 2.8 s | 9.5 s |
| mobilenetv3_small_100 | 1.52 M | 1024 | 9.0 s | 13.9 s |
Decision: resnet10t (4.92 M, 45x) was the first choice; its 16 s / 32 s epochs made the six references
alone take 12 minutes here (its 64 px stage 1 is the long pole), so the plane would not fit 15 minutes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.paper import head_space, plane_point

if TYPE_CHECKING:  # annotations only: `imlgcn --help` lists the spaces without importing Optuna
    import optuna

PLANE = {"backbone": ("test_efficientnet", "test_resnet", "mobilenetv3_small_100"), "image_size": (32, 64)}


def space(trial: optuna.Trial, num_classes: int) -> dict[str, Any]:
    """A point of the plane, then the head's knobs on F_I and F_PCA nodes (GloVe nodes are the paper's
    baseline for the node features, not a size question)."""
    plane_point(trial, PLANE)
    return head_space(trial, num_classes, ["fi", "fpca"])


def finetune_space(trial: optuna.Trial) -> dict[str, Any]:
    """The backbone's learning rate, which only fine-tuning can judge."""
    trial.suggest_float("backbone_lr", 1e-5, 1e-3, log=True)
    return {}
