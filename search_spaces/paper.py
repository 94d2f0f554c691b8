"""The paper's search space: node embedding, graph threshold/re-weighting, PCA size and both learning rates
(the backbone's in `finetune_space`: screening on cached features cannot judge it).

A define-by-run Optuna space (module-level so Ray can pickle it); `pca_dim` exists only for fpca,
so trials of the other embeddings do not spend samples on a parameter they ignore.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: `imlgcn --help` lists the spaces without importing Optuna
    import optuna



def space(trial: optuna.Trial, num_classes: int) -> dict[str, Any]:
    """Suggest one paper-space point; every name is a TrialConfig field."""
    return head_space(trial, num_classes, ["fi", "fpca", "word"])


def head_space(trial: optuna.Trial, num_classes: int, embeddings: list[str]) -> dict[str, Any]:
    """The head's knobs: node embedding (one of `embeddings`), tau, p, pca_dim (fpca only), gcn_lr."""
    if num_classes < 1:
        raise ValueError(f"num_classes={num_classes}: pass the data set's number of classes (at least 1)")
    embedding = trial.suggest_categorical("embedding", embeddings)
    trial.suggest_float("tau", 0.05, 0.9)
    trial.suggest_float("p", 0.05, 0.95)
    if embedding == "fpca":
        trial.suggest_int("pca_dim", min(2, num_classes), num_classes, log=True)
    trial.suggest_float("gcn_lr", 1e-4, 3e-2, log=True)
    return {}


def plane_point(trial: optuna.Trial, plane: dict[str, tuple]) -> None:
    """Suggest one stage-1 setting of `plane` ({"backbone": names, "image_size": pixels}): a point of the
    accuracy-versus-size plane, whose stage 1 and direct model the study trains before any trial."""
    for name, choices in plane.items():
        trial.suggest_categorical(name, list(choices))


def finetune_space(trial: optuna.Trial) -> dict[str, Any]:
    """What only fine-tuning can judge: the backbone's learning rate."""
    trial.suggest_float("backbone_lr", 1e-5, 1e-3, log=True)
    return {}
