"""The node-feature embedding registry (trainables/embeddings.py) against what the code builds and checks.

Hand-worked: C = 5 COCO labels, the tiny test_resnet backbone (d = 96), pca_dim = 3, GloVe (300 columns).
Every expected value is written here, not read from the registry, so a wrong entry fails.
"""

import dataclasses

import numpy as np
import pytest

from trainables.config import ConfigError, TrialConfig
from trainables.embeddings import EMBEDDINGS, NAMES, WORD_DIM, embedding, key_applies
from trainables.models.model import build_model, count_parameters, model_parameter_count
from trainables.stages.gcn_inputs import H0_BUILDERS, gcn_inputs, label_adjacency, node_features
from trainables.stages.stage_cache import Stage1

CLASSES = ("person", "bicycle", "car", "dog", "cat")  # COCO names: the packaged GloVe file has them
D, K, HIDDEN = 96, 3, 8  # test_resnet's pooled features; pca_dim; the GCN's hidden width
# H0's columns of each embedding at d = 96, k = 3: the rule written out by hand (None: no GCN head)
WIDTH = {"none": None, "word": 300, "fi": D, "fpca": K, "fi_centred": D, "random": K}


@pytest.fixture(scope="module")
def inputs():
    """The GCN inputs of random stage-1 features (N = 20 images x d = 96) and labels where every class occurs."""
    rng = np.random.default_rng(0)
    labels = (rng.random((20, len(CLASSES))) < 0.4).astype(np.float32)
    labels[np.arange(len(CLASSES)), np.arange(len(CLASSES))] = 1  # each class has an image
    stage1 = Stage1("k", {}, {}, rng.normal(size=(20, D)).astype(np.float32), np.zeros((4, D), np.float32), {})
    return gcn_inputs(stage1, labels, labels[:4], CLASSES)


def test_the_registry_is_the_config_vocabulary():
    assert set(NAMES) == set(WIDTH) and NAMES[0] == "none"
    for name in NAMES:
        assert TrialConfig(embedding=name).embedding == name
    with pytest.raises(ConfigError, match="embedding='glove' is not one of none"):
        TrialConfig(embedding="glove")
    with pytest.raises(ValueError, match="embedding must be one of"):
        embedding("glove")


def test_input_width_by_hand():
    for name, width in WIDTH.items():
        assert EMBEDDINGS[name].input_width(d=D, k=K) == width, name
        assert EMBEDDINGS[name].has_head == (width is not None)
    assert EMBEDDINGS["word"].input_width(d=D, k=K, word_dim=50) == 50 and WORD_DIM == 300


def test_every_embedding_with_a_head_has_exactly_one_h0_builder():
    assert set(H0_BUILDERS) == {name for name in NAMES if EMBEDDINGS[name].has_head}


@pytest.mark.parametrize("name", sorted(WIDTH))
def test_h0_and_the_built_models_gcn_input_have_the_registry_width(inputs, name):
    config = TrialConfig(embedding=name, pca_dim=K, gcn_hidden=HIDDEN, backbone="test_resnet")
    h0 = node_features(config, inputs)
    if WIDTH[name] is None:
        assert h0 is None
        model = build_model("test_resnet", len(CLASSES), name, with_backbone=False)
        assert not hasattr(model, "gc1")
        return
    assert h0.shape == (len(CLASSES), WIDTH[name])
    model = build_model("test_resnet", len(CLASSES), name, h0, label_adjacency(config, inputs), hidden=HIDDEN,
                        with_backbone=False)
    assert tuple(model.gc1.weight.shape) == (WIDTH[name], HIDDEN)  # the GCN's input: in_dim x hidden
    in_dim = EMBEDDINGS[name].input_width(d=None, k=K)  # as `imlgcn params` passes it: d read from the backbone
    counts = count_parameters("test_resnet", len(CLASSES), name, in_dim=in_dim, hidden=HIDDEN)
    assert counts["head"] == WIDTH[name] * HIDDEN + HIDDEN * D  # two bias-free graph convolutions
    assert counts["total"] == model_parameter_count(model, "test_resnet")


def test_k_follows_pca_dim_and_zero_means_every_class(inputs):
    for name in ("fpca", "random"):
        config = TrialConfig(embedding=name, pca_dim=0)
        assert node_features(config, inputs).shape == (len(CLASSES), len(CLASSES))
        assert node_features(dataclasses.replace(config, pca_dim=2), inputs).shape == (len(CLASSES), 2)


def test_config_rules_read_the_registry():
    for name in NAMES:  # H0 from stage 1's features: random node features without a trained or given backbone
        config = dict(embedding=name, pretrain_epochs=0, epochs=0 if name == "none" else 1)
        if name in ("fi", "fpca", "fi_centred"):
            with pytest.raises(ConfigError, match="random node features"):
                TrialConfig(**config)
        else:
            TrialConfig(**config)
    for name in NAMES:  # pca_dim is checked against the classes only where it sets H0's width
        config = TrialConfig(embedding=name, pca_dim=6)
        if name in ("fpca", "random"):
            with pytest.raises(ConfigError, match="pca_dim=6 exceeds the 5 classes"):
                config.check_classes(5)
        else:
            config.check_classes(5)


def test_pca_dim_applies_only_where_the_embedding_takes_it():
    assert key_applies("pca_dim", "fpca") and key_applies("pca_dim", "random")
    for other in ("none", "word", "fi", "fi_centred", "", None, float("nan")):
        assert not key_applies("pca_dim", other)
    assert key_applies("tau", "word") and key_applies("embedding", float("nan"))


def test_the_report_tables_blank_pca_dim_by_the_registry():
    import pandas as pd

    from study.reports.front_table import front_rows

    front = pd.DataFrame({"trial_id": ["a", "b", "c"], "embedding": ["fpca", "word", "random"],
                          "pca_dim": pd.array([4, 7, 2], dtype="Int64"), "mAP": [50.0, 51.0, 49.0],
                          "n_params": [10, 11, 12], "n_params_inference": [5, 5, 5]})
    rows = front_rows(front, None, ["embedding", "pca_dim"])
    assert list(rows["pca_dim"]) == ["4", "-", "2"]  # random's k is its pca_dim too
