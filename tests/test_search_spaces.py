"""Every name a search space can produce is a TrialConfig field, on every branch, and builds a valid config."""

from __future__ import annotations

import functools
import pickle
from dataclasses import fields
from typing import Any

import optuna
import pytest

from search_spaces import SPACES, get_space
from trainables.config import TrialConfig

FIELDS = {f.name for f in fields(TrialConfig)}
EMBEDDINGS = {"paper": ("fi", "fpca", "word"), "small": ("fi", "fpca"), "sizes": ("fi", "fpca"),
              "paper-coco-sizes": ("fi", "fpca", "word")}
# Everything any space may ask for, so a FixedTrial can answer any branch.
FIXED = dict(tau=0.3, p=0.4, pca_dim=2, backbone_lr=1e-4, gcn_lr=1e-3)
PLANE_POINTS = {"sizes": dict(backbone="mobilenetv3_small_100", image_size=32),
                "paper-coco-sizes": dict(backbone="tresnet_l", image_size=448)}

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _check_point(params: dict[str, Any], returned: dict[str, Any] | None, num_classes: int) -> TrialConfig:
    """The suggested + returned names are fields, pca_dim appears iff fpca, and the config is valid."""
    returned = returned or {}
    assert isinstance(returned, dict)
    names = set(params) | set(returned)
    assert names <= FIELDS, f"not TrialConfig fields: {sorted(names - FIELDS)}"
    values = {**params, **returned}
    assert ("pca_dim" in values) == (values["embedding"] == "fpca")
    config = TrialConfig.from_dict(values)
    config.check_classes(num_classes)
    return config


@pytest.mark.parametrize("name", sorted(SPACES))
@pytest.mark.parametrize("num_classes", [2, 20, 80])
def test_space_study_names_are_fields(name: str, num_classes: int) -> None:
    space = get_space(name)
    seen: set[str] = set()

    def objective(trial: optuna.Trial) -> float:
        returned = {**(space.head(trial, num_classes) or {}), **(space.finetune(trial) or {})}
        config = _check_point(trial.params, returned, num_classes)
        if config.embedding == "fpca":
            assert 2 <= config.pca_dim <= num_classes
        seen.add(config.embedding)
        return 0.0

    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    study.optimize(objective, n_trials=60)
    assert len(study.trials) == 60
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    assert seen == set(EMBEDDINGS[name])


@pytest.mark.parametrize("name, embedding", [(n, e) for n in sorted(SPACES) for e in EMBEDDINGS[n]])
def test_space_fixed_trial_each_branch(name: str, embedding: str) -> None:
    trial = optuna.trial.FixedTrial({**FIXED, **PLANE_POINTS.get(name, {}), "embedding": embedding})
    returned = {**(get_space(name).head(trial, 20) or {}), **(get_space(name).finetune(trial) or {})}
    params = trial.params
    _check_point(params, returned, 20)
    assert ("pca_dim" in params) == (embedding == "fpca")
    if name == "small":
        assert "backbone_lr" not in params


def test_space_with_partial_pickles() -> None:
    """The driver hands Ray `functools.partial(space, num_classes=C)`; Ray pickles it."""
    for name, space in SPACES.items():
        bound = pickle.loads(pickle.dumps(functools.partial(space.head, num_classes=5)))
        trial = optuna.trial.FixedTrial({**FIXED, **PLANE_POINTS.get(name, {}), "embedding": "fpca", "pca_dim": 5})
        bound(trial)
        assert trial.params["pca_dim"] == 5


def test_one_class_data_set_still_valid() -> None:
    trial = optuna.trial.FixedTrial({**FIXED, "embedding": "fpca", "pca_dim": 1})
    returned = get_space("paper").head(trial, 1)
    assert _check_point(trial.params, returned, 1).pca_dim == 1


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(ValueError, match="paper, small, sizes, paper-coco-sizes"):
        get_space("nope")
    with pytest.raises(ValueError, match="num_classes=0"):
        get_space("paper").head(optuna.trial.FixedTrial({**FIXED, "embedding": "fi"}), 0)


def test_screening_cannot_judge_the_backbone_learning_rate() -> None:
    """The head part never suggests backbone_lr; the paper space's fine-tuning part does."""
    trial = optuna.trial.FixedTrial({**FIXED, "embedding": "fi"})
    get_space("paper").head(trial, 20)
    assert "backbone_lr" not in trial.params
    get_space("paper").finetune(trial)
    assert trial.params["backbone_lr"] == FIXED["backbone_lr"]


@pytest.mark.parametrize("name", sorted(PLANE_POINTS))
def test_a_plane_space_samples_every_point_of_its_plane(name: str) -> None:
    """A size-plane space samples backbone and image_size from its PLANE, each point a valid config; the
    embedded data's plane (`sizes`) spans at least 10x in backbone parameters."""
    from trainables.backbones import backbone_size

    space = get_space(name)
    assert set(space.plane) == {"backbone", "image_size"} and len(space.plane["backbone"]) >= 3
    assert len(space.plane["image_size"]) >= 2
    seen = set()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(120):
        trial = study.ask()
        space.head(trial, 20)
        seen.add((trial.params["backbone"], trial.params["image_size"]))
        _check_point(trial.params, {}, 20).check_backbone()
    assert seen == {(b, s) for b in space.plane["backbone"] for s in space.plane["image_size"]}
    if name == "sizes":
        counts = [backbone_size(b)[0] for b in space.plane["backbone"]]
        assert max(counts) >= 10 * min(counts)
    assert not get_space("paper").plane and not get_space("small").plane
