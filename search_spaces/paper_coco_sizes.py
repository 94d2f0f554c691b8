"""The paper's Table 1 backbones as a plane on a GPU cluster (`--space paper-coco-sizes`, preset
`paper-coco-sizes`): TResNet-M, TResNet-L and ResNet-101 at 224 and 448 px, each with its same-budget direct
model (ASL's and ML-GCN's rows) and IML-GCN heads, so the front answers the paper's question: which model
is smallest for a given mAP, and does the GCN head change that?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from search_spaces.paper import finetune_space, head_space, plane_point  # noqa: F401 (finetune_space: the paper's)

if TYPE_CHECKING:  # annotations only: `imlgcn --help` lists the spaces without importing Optuna
    import optuna

PLANE = {"backbone": ("tresnet_m", "tresnet_l", "resnet101"), "image_size": (224, 448)}


def space(trial: optuna.Trial, num_classes: int) -> dict[str, Any]:
    """A point of the plane, then the paper's head space: GloVe, F_I and F_PCA nodes, tau, p, k, gcn_lr."""
    plane_point(trial, PLANE)
    return head_space(trial, num_classes, ["fi", "fpca", "word"])

