"""Search spaces by name. Each is two define-by-run functions (module-level, so Ray can pickle them):
`head(trial, num_classes)` suggests what screening on cached features can judge (node features, graph,
PCA size, the head's learning rate); `finetune(trial)` what only fine-tuning can judge (the backbone's
learning rate). Every suggested name is a TrialConfig field. A space whose `plane` is not empty also samples
the stage-1 settings it lists (backbones, resolutions): the study trains stage 1 and the direct model of
each combination before the trials (see study.levels.references)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from search_spaces import paper, paper_coco_sizes, sizes, small

if TYPE_CHECKING:  # annotations only: `imlgcn --help` lists the spaces without importing Optuna
    import optuna


@dataclass(frozen=True)
class SearchSpace:
    head: Callable[[optuna.Trial, int], dict[str, Any]]
    finetune: Callable[[optuna.Trial], dict[str, Any]]
    plane: dict[str, tuple] = field(default_factory=dict)  # stage-1 settings sampled: {"backbone": .., "image_size": ..}

    def keys(self, num_classes: int, level: str) -> tuple[str, ...]:
        """The config keys a level ("screen" or "finetune") suggests, every branch, in the order it suggests
        them: found by asking the space 30 random points (the Tune searcher and a dry run both need them,
        and a define-by-run space declares them nowhere else)."""
        import optuna

        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
        names: list[str] = []
        for _ in range(30):
            trial = study.ask()
            self.head(trial, num_classes)
            if level == "finetune":
                self.finetune(trial)
            names += [k for k in trial.params if k not in names]
        return tuple(names)


SPACES: dict[str, SearchSpace] = {"paper": SearchSpace(paper.space, paper.finetune_space),
                                  "small": SearchSpace(small.space, small.finetune_space),
                                  "sizes": SearchSpace(sizes.space, sizes.finetune_space, sizes.PLANE),
                                  "paper-coco-sizes": SearchSpace(paper_coco_sizes.space, paper_coco_sizes.finetune_space,
                                                                  paper_coco_sizes.PLANE)}


def get_space(name: str) -> SearchSpace:
    """The space called `name`; an unknown name fails with the list of known ones."""
    try:
        return SPACES[name]
    except KeyError:
        raise ValueError(f"unknown search space {name!r}: use one of {', '.join(SPACES)}") from None
