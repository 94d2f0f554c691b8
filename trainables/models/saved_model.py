"""A trained model as a folder anyone can load without our training code or pickle.

`model.safetensors` holds every tensor (backbone, GCN weights, and the label graph and node features,
which are buffers); `imlgcn.json` holds what rebuilds and uses it: the flat TrialConfig, the class
names in output order and timm's preprocessing. Loading never executes code from the folder.

A head trained on cached features (finetune_backbone=false) is saved without its frozen backbone:
`imlgcn.json` names the stage-1 weights file that holds it (stored once per stage-1 key), so a study
of hundreds of such trials does not copy the backbone hundreds of times. `self_contained` writes a
copy with the backbone inside, in the folded inference form (IML-GCN's constant classifiers as a
bias-free linear head, `model.fold`), which is what export registers and predict runs.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from trainables.config import TrialConfig
from trainables.models.model import DirectModel, build_model, fold
from trainables.data.preprocess import build_transforms, data_config

WEIGHTS, META = "model.safetensors", "imlgcn.json"
FORMAT_VERSION = 1
BACKBONE_PREFIX = "backbone."


def save_model(folder: str | Path, model: nn.Module, config: TrialConfig, classes: tuple[str, ...],
               metrics: dict[str, float] | None = None, backbone_weights: str | Path | None = None) -> Path:
    """Write the model folder atomically (temp + rename); an existing folder is replaced.

    A model built without its backbone (a head) needs `backbone_weights`: a safetensors file whose
    `backbone.*` tensors are the frozen backbone it was trained on.
    """
    folded = isinstance(model, DirectModel) and model.head.bias is None
    if getattr(model, "backbone", True) is None and backbone_weights is None:
        raise ValueError("a head saved without its backbone needs backbone_weights (the stage-1 weights file)")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = folder.parent / f".tmp-{folder.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS))
        meta = {"format": FORMAT_VERSION, "config": config.to_dict(), "classes": list(classes),
                "preprocess": data_config(config.backbone, config.image_size),
                "metrics": {k: float(v) for k, v in (metrics or {}).items()}}
        if getattr(model, "backbone", True) is None:
            meta["backbone_weights"] = str(Path(backbone_weights).absolute())
        if folded:
            meta["folded"] = True  # IML-GCN's classifiers stored as a bias-free linear head
        (tmp / META).write_text(json.dumps(meta, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.rename(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def read_meta(folder: str | Path) -> dict[str, Any]:
    """The folder's imlgcn.json; a folder without one is a ValueError that says what is expected."""
    path = Path(folder) / META
    if not path.is_file():
        raise ValueError(f"{folder} is not an imlgcn model folder (no {META}): pass a folder saved by a "
                         "trial or `imlgcn train`, or a models:/ or runs:/ URI of an exported model")
    return json.loads(path.read_text())


def load_model(folder: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on `device`, meta); the weights must match the saved config exactly."""
    meta = read_meta(folder)
    config = TrialConfig.from_dict(meta["config"])
    state = load_file(str(Path(folder) / WEIGHTS), device="cpu")
    if "backbone_weights" in meta:
        state.update(_backbone_state(meta["backbone_weights"], folder))
    if meta.get("folded"):
        from trainables.backbones import create_backbone

        model = DirectModel(create_backbone(config.backbone), len(meta["classes"]), bias=False)
    else:
        graph = {}
        if config.embedding != "none":
            graph = {"node_features": state["node_features"], "adjacency": state["adjacency"]}
        model = build_model(config.backbone, len(meta["classes"]), config.embedding, hidden=config.gcn_hidden, **graph)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        raise ValueError(f"weights in {folder} do not match its {META}: {str(error).splitlines()[0]}") from None
    return model.to(device).eval(), meta


def _backbone_state(path: str, folder: str | Path) -> dict[str, torch.Tensor]:
    """The `backbone.*` tensors of the stage-1 weights file a head-only model folder refers to."""
    if not Path(path).is_file():
        raise ValueError(f"{folder} refers to the backbone weights {path}, which are gone (the study's stage-1 "
                         "cache was moved or deleted): export the model while they exist, or rerun the trial")
    return {k: v for k, v in load_file(path, device="cpu").items() if k.startswith(BACKBONE_PREFIX)}


def self_contained(folder: str | Path, out: str | Path) -> Path:
    """The model folder rewritten at `out` with every weight inside (a head-only folder gets its backbone)
    and in folded form (same scores, backbone + C x d parameters)."""
    model, meta = load_model(folder)
    config = TrialConfig.from_dict(meta["config"])
    return save_model(out, fold(model), config, tuple(meta["classes"]), meta.get("metrics"))


@torch.no_grad()
def predict_probabilities(model: nn.Module, meta: dict[str, Any], paths: list[str], batch_size: int = 16,
                          device: str | torch.device = "cpu") -> np.ndarray:
    """sigmoid(logits) for each image (N x C), preprocessed as in training's evaluation."""
    from PIL import Image

    transform = build_transforms(meta["preprocess"], training=False)
    rows = []
    for start in range(0, len(paths), batch_size):
        images = []
        for path in paths[start:start + batch_size]:
            with Image.open(path) as image:
                images.append(transform(image.convert("RGB")))
        rows.append(torch.sigmoid(model(torch.stack(images).to(device))).float().cpu().numpy())
    return np.concatenate(rows) if rows else np.zeros((0, len(meta["classes"])), np.float32)
