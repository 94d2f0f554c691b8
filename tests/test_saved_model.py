"""Saved models: a round trip gives the same scores, predict preprocesses as training evaluated."""

import json

import numpy as np
import pytest
import torch

from trainables.config import TrialConfig
from trainables.data.datasets import read_split
from trainables.data.images import ImageDataset
from trainables.models.model import build_model
from trainables.data.preprocess import build_transforms, data_config
from trainables.models.saved_model import load_model, predict_probabilities, read_meta, save_model


def _model(config: TrialConfig, classes: int):
    torch.manual_seed(0)
    graph = {}
    if config.embedding != "none":
        graph = {"node_features": torch.randn(classes, 3), "adjacency": torch.eye(classes)}
    return build_model(config.backbone, classes, config.embedding, hidden=config.gcn_hidden, **graph).eval()


@pytest.mark.parametrize("embedding", ["none", "fpca"])
def test_round_trip_predicts_what_training_evaluated(tmp_path, tiny_config, embedding):
    config = TrialConfig(**{**tiny_config.to_dict(), "embedding": embedding})
    val = read_split("coco", config.data_dir, "val")
    model = _model(config, len(val.classes))
    folder = save_model(tmp_path / "m", model, config, val.classes, {"mAP": 12.5})
    assert sorted(p.name for p in folder.iterdir()) == ["imlgcn.json", "model.safetensors"]
    meta = read_meta(folder)
    assert meta["classes"] == list(val.classes) and meta["metrics"] == {"mAP": 12.5}
    assert meta["preprocess"] == json.loads(json.dumps(data_config("test_resnet", 32)))
    loaded, _ = load_model(folder)
    dataset = ImageDataset(val, build_transforms(data_config(config.backbone, config.image_size), training=False))
    images = torch.stack([dataset[i][0] for i in range(4)])
    with torch.no_grad():
        expected = torch.sigmoid(model(images)).numpy()
    got = predict_probabilities(loaded, meta, list(val.paths[:4]), batch_size=3)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_saving_again_replaces_the_folder_atomically(tmp_path, tiny_config):
    model = _model(tiny_config, 5)
    save_model(tmp_path / "m", model, tiny_config, tuple("abcde"))
    (tmp_path / "m" / "stale.txt").write_text("x")
    save_model(tmp_path / "m", model, tiny_config, tuple("abcde"))
    assert not (tmp_path / "m" / "stale.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["m"]  # no temp folder left behind


def test_bad_model_folders_are_clear_errors(tmp_path, tiny_config):
    with pytest.raises(ValueError, match="is not an imlgcn model folder"):
        read_meta(tmp_path)
    save_model(tmp_path / "m", _model(tiny_config, 5), tiny_config, tuple("abcde"))
    meta = json.loads((tmp_path / "m" / "imlgcn.json").read_text())
    meta["config"]["gcn_hidden"] = 32  # the weights were saved with 16
    (tmp_path / "m" / "imlgcn.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not match its imlgcn.json"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("embedding", ["fpca", "none"])
def test_a_head_trained_on_cached_features_is_saved_without_its_backbone(tmp_path, tiny_config, embedding):
    """Fast mode builds no backbone and saves only the head, referring to the one stored stage-1 backbone;
    it still predicts what training evaluated, and its self-contained copy needs nothing else."""
    from safetensors.torch import load_file

    from trainables.training.metrics import multilabel_metrics
    from trainables.training.runtime import Runtime
    from trainables.models.saved_model import self_contained
    from trainables.stages.stage_cache import stage1_key, stage1_weights
    from trainables.stages.stages import run_stages

    config = TrialConfig(**{**tiny_config.to_dict(), "embedding": embedding, "finetune_backbone": False,
                            "epochs": 2})
    metrics = run_stages(config, str(tmp_path / "stage1"), Runtime(), lambda _: None, model_dir=str(tmp_path / "m"))
    stored = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert stored and not [k for k in stored if k.startswith("backbone.")]  # the head only
    meta = read_meta(tmp_path / "m")
    assert meta["backbone_weights"] == str(stage1_weights(tmp_path / "stage1", stage1_key(config)))
    val = read_split("coco", config.data_dir, "val")
    model, meta = load_model(tmp_path / "m")
    scores = predict_probabilities(model, meta, list(val.paths))
    assert multilabel_metrics(scores, val.labels)["mAP"] == pytest.approx(metrics["mAP"], abs=1e-3)

    whole = self_contained(tmp_path / "m", tmp_path / "export")
    assert "backbone_weights" not in read_meta(whole) and read_meta(whole).get("folded", False) is (embedding != "none")
    exported = load_file(str(whole / "model.safetensors"))
    assert [k for k in exported if k.startswith("backbone.")] and "head.weight" in exported
    assert not [k for k in exported if k.startswith("gc")]  # folded: the GCN became a C x d linear head
    (tmp_path / "stage1" / stage1_key(config) / "model.safetensors").unlink()  # the cache is gone
    with pytest.raises(ValueError, match="refers to the backbone weights .* which are gone"):
        load_model(tmp_path / "m")
    model, meta = load_model(whole)  # the exported copy is self-contained
    np.testing.assert_allclose(predict_probabilities(model, meta, list(val.paths)), scores, rtol=1e-5, atol=1e-6)
