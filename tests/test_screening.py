"""Level 1: a head judged on shared, cached inputs gives exactly what the head-only stage 3 gives: both
call head.train_head on the same inputs, with no special case for either."""

import dataclasses

import numpy as np
import pytest

from trainables.data.datasets import read_split
from trainables.stages.gcn_inputs import gcn_inputs, node_features, stored_inputs
from trainables.stages.head import screen
from trainables.training.runtime import Runtime
from trainables.training.split_index import index_path, read_index, write_index
from trainables.stages.stage_cache import load_stage1, stage1_key
from trainables.stages.stages import run_stages


@pytest.fixture(scope="module")
def cached(tiny_data, tmp_path_factory):
    """Stage 1 of the tiny set stored once, and the driver's split index."""
    from trainables.config import TrialConfig

    root = tmp_path_factory.mktemp("stage1")
    config = TrialConfig(dataset="coco", data_dir=tiny_data, image_size=32, backbone="test_resnet",
                         pretrain_epochs=1, epochs=3, batch_size=16, gcn_hidden=16, finetune_backbone=False)
    run_stages(config, str(root), Runtime(), lambda _: None, stages="stage1")
    index = write_index(index_path(root, config), read_split("coco", tiny_data, "train"),
                        read_split("coco", tiny_data, "val"))
    return config, str(root), str(index)


@pytest.mark.parametrize("changes", [{"embedding": "fpca"}, {"embedding": "fpca", "pca_dim": 2},
                                     {"embedding": "fi", "tau": 0.3}, {"embedding": "word", "p": 0.5},
                                     {"embedding": "random"}, {"embedding": "fi_centred"}, {"embedding": "none"}])
def test_screening_equals_the_fast_stage3(cached, tmp_path, changes):
    config, root, index = cached
    config = dataclasses.replace(config, **changes)
    expected = run_stages(config, root, Runtime(), lambda _: None, split_index=index)
    got = screen(config, stored_inputs(root, stage1_key(config), index))
    assert got["mAP"] == pytest.approx(expected["mAP"], abs=1e-9)
    assert got["n_params"] == expected["n_params"] and got["n_params_inference"] == expected["n_params_inference"]


def test_shared_inputs_are_loaded_once_per_process_and_fpca_is_a_slice(cached):
    from trainables.models.label_graph import image_feature_embeddings

    config, root, index = cached
    first = stored_inputs(root, stage1_key(config), index)
    assert stored_inputs(root, stage1_key(config), index) is first  # the cache, not a second load
    train, val = read_index(index)
    stage1 = load_stage1(root, stage1_key(config))
    assert gcn_inputs(stage1, train.labels, val.labels, train.classes).fi.shape == first.fi.shape
    for k in (1, 3, 5):
        sliced = node_features(dataclasses.replace(config, embedding="fpca", pca_dim=k), first)
        direct = image_feature_embeddings(stage1.train_features, train.labels, pca_dim=k)
        np.testing.assert_allclose(sliced, direct, rtol=1e-5, atol=1e-5)  # PCA(k) = the first k of the full PCA


def test_the_split_index_gives_back_every_path_and_label(cached, tiny_data):
    _, _, index = cached
    train, val = read_index(index)
    for split, name in ((train, "train"), (val, "val")):
        original = read_split("coco", tiny_data, name)
        assert list(split.paths) == list(original.paths) and split.paths[-1] == original.paths[-1]
        np.testing.assert_array_equal(split.labels, original.labels)
        assert split.classes == original.classes
