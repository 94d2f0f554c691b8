"""The three stages as plain functions (no Ray): tiny real models on the tiny synthetic set."""

import dataclasses

import numpy as np
import pytest

from trainables.config import TrialConfig
from trainables.training.runtime import Runtime, discard_report
from trainables.stages.stage_cache import load_stage1, stage1_key
from trainables.stages.gcn_inputs import label_adjacency, node_features
from trainables.training.splits import load_splits
from trainables.stages.stages import run_stages


class Recorder:
    def __init__(self):
        self.lines, self.reports = [], []

    def log(self, text):
        self.lines.append(text)

    def report(self, metrics, checkpoint_dir):
        self.reports.append((metrics, checkpoint_dir))
        discard_report(metrics, checkpoint_dir)  # a reporter owns the folder it is given


@pytest.mark.parametrize("embedding", ["fpca", "fi", "word", "none"])
def test_run_stages_reports_every_epoch_and_reuses_stage1(tiny_config, tmp_path, embedding):
    config = dataclasses.replace(tiny_config, embedding=embedding, epochs=2)
    first = Recorder()
    metrics = run_stages(config, str(tmp_path), Runtime(report=first.report), first.log)
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "n_params"):
        assert key in metrics and np.isfinite(metrics[key])
    assert 0 <= metrics["mAP"] <= 100
    assert [m.get("pretrain_epoch") for m, _ in first.reports[:1]] == [1]
    assert [m["epoch"] for m, _ in first.reports[1:]] == [1, 2]
    assert all(folder is not None for _, folder in first.reports)  # rank 0 checkpoints every epoch
    assert load_stage1(tmp_path, stage1_key(config)) is not None
    again = Recorder()
    run_stages(dataclasses.replace(config, tau=0.5, gcn_lr=1e-3), str(tmp_path), Runtime(report=again.report), again.log)
    assert any("reusing" in line for line in again.lines)
    assert not any("pretrain_epoch" in m for m, _ in again.reports)  # the backbone was not retrained


def test_fast_mode_trains_only_the_gcn(tiny_config, tmp_path):
    config = dataclasses.replace(tiny_config, finetune_backbone=False, epochs=3)
    rec = Recorder()
    metrics = run_stages(config, str(tmp_path), Runtime(report=rec.report), rec.log)
    assert len([m for m, _ in rec.reports if "epoch" in m]) == 3 and np.isfinite(metrics["mAP"])


def test_same_seed_same_result(tiny_config, tmp_path):
    a = run_stages(tiny_config, str(tmp_path / "a"), Runtime(), lambda _: None)
    b = run_stages(tiny_config, str(tmp_path / "b"), Runtime(), lambda _: None)
    assert a["mAP"] == pytest.approx(b["mAP"], abs=1e-6)


def test_graph_and_node_features_follow_the_config(tiny_config, tmp_path):
    from trainables.stages.gcn_inputs import gcn_inputs
    from trainables.stages.stage_cache import Stage1

    splits = load_splits(tiny_config)
    labels = splits.train.labels
    rng = np.random.default_rng(0)
    stage1 = Stage1("k", {}, {}, rng.normal(size=(len(labels), 8)).astype(np.float32),  # F_GAP, 8 features
                    np.zeros((len(splits.val.labels), 8), np.float32), {})
    inputs = gcn_inputs(stage1, labels, splits.val.labels, splits.train.classes)
    adjacency = label_adjacency(tiny_config, inputs)
    assert adjacency.shape == (5, 5) and np.isfinite(adjacency).all()
    assert not np.allclose(adjacency, label_adjacency(dataclasses.replace(tiny_config, tau=1.0), inputs))
    assert node_features(dataclasses.replace(tiny_config, embedding="fpca", pca_dim=3), inputs).shape == (5, 3)
    assert node_features(dataclasses.replace(tiny_config, embedding="fpca"), inputs).shape == (5, 5)  # 0 = C
    assert node_features(dataclasses.replace(tiny_config, embedding="fi"), inputs).shape == (5, 8)
    assert node_features(dataclasses.replace(tiny_config, embedding="word"), inputs).shape == (5, 300)
    assert node_features(dataclasses.replace(tiny_config, embedding="none"), inputs) is None


def test_stages_train_on_voc_and_csv_layouts(tmp_path):
    """The real-layout readers feed the same stages: VOC's -1 (difficult) entries are ignored throughout."""
    from tests.test_readers import _csv, _voc

    voc = _voc(tmp_path / "voc")
    own = _csv(tmp_path / "csv")
    for dataset, folder in (("voc", voc), ("csv", own)):
        config = TrialConfig(dataset=dataset, data_dir=str(folder), image_size=32, backbone="test_resnet",
                             pretrain_epochs=1, epochs=1, batch_size=4, gcn_hidden=8, pca_dim=2)
        metrics = run_stages(config, str(tmp_path / dataset / "cache"), Runtime(), lambda _: None)
        assert 0 <= metrics["mAP"] <= 100 and metrics["n_params"] > 0


def test_a_corrupt_image_mid_epoch_is_a_clear_error(tmp_path, tiny_config):
    """Documented choice: an image that breaks after the driver's check stops the run, naming the file
    (a silently skipped image would change the data set under the study's feet)."""
    import shutil

    from trainables.data.labelled_images import DataError

    data = tmp_path / "data"
    shutil.copytree(tiny_config.data_dir, data)
    broken = sorted((data / "train2014").iterdir())[7]
    broken.write_bytes(b"\xff\xd8 truncated")
    config = dataclasses.replace(tiny_config, data_dir=str(data))
    with pytest.raises(DataError, match=f"image {broken} cannot be read"):
        run_stages(config, str(tmp_path / "cache"), Runtime(), lambda _: None)


def _stage1_inputs(config, tmp_path):
    from trainables.stages.gcn_inputs import gcn_inputs
    from trainables.stages.pretrain import run_stage1

    splits = load_splits(config)
    stage1 = run_stage1(config, splits, str(tmp_path), Runtime(), lambda _: None)
    return stage1, gcn_inputs(stage1, splits.train.labels, splits.val.labels, splits.train.classes)


def test_head_warm_up_leaves_the_backbone_untouched(tiny_config, tmp_path):
    """During its warm-up epochs only the new head trains (on cached features): the backbone stays stage 1's."""
    import torch

    from trainables.stages.head import head_model, train_head

    config = dataclasses.replace(tiny_config, head_warmup_epochs=2)
    stage1, inputs = _stage1_inputs(config, tmp_path)
    model = head_model(config, inputs, stage1.backbone_state)
    head_before = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("gc")}
    metrics = train_head(config, model, inputs, Runtime(), lambda _: None, 2, "constant")
    assert 0 <= metrics["mAP"] <= 100
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value, stage1.backbone_state[name]), name
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in head_before.items())


def test_direct_head_keep_or_reinit(tiny_config, tmp_path):
    import torch

    from trainables.stages.head import head_model

    stage1, inputs = _stage1_inputs(tiny_config, tmp_path)
    kept = head_model(dataclasses.replace(tiny_config, embedding="none"), inputs, stage1.backbone_state)
    new = head_model(dataclasses.replace(tiny_config, embedding="none", direct_head="reinit"), inputs,
                     stage1.backbone_state)
    assert torch.equal(kept.head.weight, stage1.head_state["weight"])
    assert not torch.equal(new.head.weight, stage1.head_state["weight"])


def test_the_baseline_is_the_direct_model_with_the_same_budget(tiny_config, tmp_path):
    """direct_mAP is the direct model continued for exactly the run's stage-3 budget (stored once per key):
    training the direct arm with that budget reproduces it, and graph settings do not change its key."""
    from trainables.stages.baseline import baseline_key, load_baseline

    config = dataclasses.replace(tiny_config, embedding="fpca", epochs=2)
    metrics = run_stages(config, str(tmp_path), Runtime(), lambda _: None)
    stored = load_baseline(tmp_path, baseline_key(config))
    assert stored is not None and metrics["direct_mAP"] == stored["mAP"]
    assert baseline_key(dataclasses.replace(config, tau=0.5, p=0.0, embedding="word")) == baseline_key(config)
    assert baseline_key(dataclasses.replace(config, epochs=3)) != baseline_key(config)
    direct = run_stages(dataclasses.replace(config, embedding="none"), str(tmp_path / "fresh"), Runtime(),
                        lambda _: None)
    assert direct["mAP"] == pytest.approx(stored["mAP"], abs=1e-6)  # the same training, done as a run
    assert len(stored["class_AP"]) == 5


def test_no_checkpoint_folder_outlives_its_report(tiny_config, tmp_path, monkeypatch):
    """Every checkpoint folder goes to a reporter that owns it, including those of the same-budget
    baseline trained quietly inside a run (it once leaked two folders per `imlgcn train` into /tmp)."""
    import tempfile

    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    seen = []

    def report(metrics, folder):
        seen.append(folder)
        discard_report(metrics, folder)

    run_stages(dataclasses.replace(tiny_config, epochs=2), str(tmp_path / "cache"), Runtime(report=report),
               lambda _: None)
    assert any(seen) and not list(scratch.glob("imlgcn-checkpoint-*"))


def test_each_epoch_line_names_its_model(tiny_config, tmp_path):
    """A run trains the same-budget direct model, then IML-GCN, with the same budget: two `[train] epoch 1/1`
    lines whose mAPs differ, each saying which model it is about (the direct model's first)."""
    rec = Recorder()
    run_stages(tiny_config, str(tmp_path), Runtime(report=rec.report), rec.log)
    epochs = [line for line in rec.lines if line.startswith("[train] epoch 1/1")]
    assert len(epochs) == 2, rec.lines
    assert "direct model" in epochs[0] and "IML-GCN" not in epochs[0], epochs
    assert "IML-GCN (fpca" in epochs[1] and "direct model" not in epochs[1], epochs
    warm = [line for line in rec.lines if line.startswith("[warm-up]")]
    assert len(warm) == 2 and "direct model" in warm[0] and "IML-GCN (fpca" in warm[1], warm
