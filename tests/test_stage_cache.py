import dataclasses

import numpy as np
import torch

from trainables.config import TrialConfig
from trainables.stages.stage_cache import STAGE1_FIELDS, Stage1, load_stage1, save_stage1, stage1_key


def test_key_ignores_what_stage1_does_not_depend_on():
    base = TrialConfig()
    for change in ({"tau": 0.5}, {"p": 0.4}, {"pca_dim": 3}, {"gcn_lr": 1e-2}, {"backbone_lr": 1e-5},
                   {"embedding": "word"}, {"epochs": 9}, {"finetune_backbone": False}, {"use_gpu": True}):
        assert stage1_key(dataclasses.replace(base, **change)) == stage1_key(base), change
    for change in ({"backbone": "resnet18"}, {"pretrain_epochs": 3}, {"seed": 1}, {"image_size": 32},
                   {"loss": "bce"}, {"pretrain_lr": 1e-4}):
        assert stage1_key(dataclasses.replace(base, **change)) != stage1_key(base), change
    assert set(STAGE1_FIELDS) <= set(base.to_dict())


def test_synthetic_key_does_not_depend_on_the_cache_path():
    assert stage1_key(TrialConfig(data_dir="/a")) == stage1_key(TrialConfig(data_dir="/b"))
    coco_a = TrialConfig(dataset="coco", data_dir="/a")
    assert stage1_key(coco_a) != stage1_key(dataclasses.replace(coco_a, data_dir="/b"))
    assert stage1_key(coco_a) == stage1_key(dataclasses.replace(coco_a, synthetic_classes="person"))


def test_save_load_round_trip_and_race(tmp_path):
    stage = Stage1("pretrain-x", {"w": torch.arange(4.0)}, {"weight": torch.ones(2, 2)},
                   np.ones((3, 2), np.float32), np.zeros((1, 2), np.float32), {"mAP": 50.0})
    assert load_stage1(tmp_path, "pretrain-x") is None
    save_stage1(tmp_path, stage)
    loaded = load_stage1(tmp_path, "pretrain-x")
    assert torch.equal(loaded.backbone_state["w"], stage.backbone_state["w"])
    assert torch.equal(loaded.head_state["weight"], stage.head_state["weight"])
    assert np.array_equal(loaded.train_features, stage.train_features) and loaded.metrics == {"mAP": 50.0}
    save_stage1(tmp_path, dataclasses.replace(stage, metrics={"mAP": 1.0}))  # a second writer loses quietly
    assert load_stage1(tmp_path, "pretrain-x").metrics == {"mAP": 50.0}
    assert [p.name for p in tmp_path.iterdir()] == ["pretrain-x"]  # no temp folders left behind
