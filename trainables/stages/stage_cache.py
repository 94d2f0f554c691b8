"""Stage 1 (pretrain + embed) artefacts, stored once per key and shared by every trial that needs them.

Stage 1 depends on the data, the backbone and the pretraining settings, not on tau, p, pca_dim or
the GCN learning rates, so a study trains the backbone once per distinct key. The key is a hash of
exactly the fields that change stage 1's result; the folder is written atomically (temp + rename),
so a crash never leaves a half-written entry that looks complete.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from trainables.config import STAGE1, SYNTHETIC, TrialConfig, keys_of

STAGE1_FIELDS = keys_of(STAGE1)  # declared with each key in trainables.config
SYNTHETIC_ONLY = keys_of(SYNTHETIC)


@dataclass(frozen=True)
class Stage1:
    """The pretrained direct model and the pooled features F_GAP of both splits."""

    key: str
    backbone_state: dict[str, torch.Tensor]
    head_state: dict[str, torch.Tensor]
    train_features: np.ndarray  # N_train x d, eval transform
    val_features: np.ndarray  # N_val x d
    metrics: dict[str, float]  # the direct model's validation metrics (the baseline row)


def stage1_key(config: TrialConfig) -> str:
    """Deterministic key of what produced stage 1, e.g. 'pretrain-3f2a9c1d0b7e4a65'.

    The synthetic set is identified by its generator settings, not by the cache path it lives in,
    so two machines with different cache folders agree on the key.
    """
    values = {name: getattr(config, name) for name in STAGE1_FIELDS}
    if config.dataset == "synthetic":
        values["data_dir"] = ""
    else:
        values.update({name: None for name in SYNTHETIC_ONLY})
    digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
    return f"pretrain-{digest[:16]}"


def save_stage1(root: str | Path, stage: Stage1) -> Path:
    """Write `stage` under root/key atomically; if another process won the race, keep theirs."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / stage.key
    tmp = root / f".tmp-{stage.key}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        tensors = {f"backbone.{k}": v.detach().cpu().contiguous().clone() for k, v in stage.backbone_state.items()}
        tensors.update({f"head.{k}": v.detach().cpu().contiguous().clone() for k, v in stage.head_state.items()})
        save_file(tensors, str(tmp / "model.safetensors"))
        np.save(tmp / "train_features.npy", stage.train_features.astype(np.float32))
        np.save(tmp / "val_features.npy", stage.val_features.astype(np.float32))
        (tmp / "metrics.json").write_text(json.dumps(stage.metrics, indent=1))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "metrics.json").exists():
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def stage1_weights(root: str | Path, key: str) -> Path:
    """The safetensors file of stage 1's direct model (tensors `backbone.*` and `head.*`): the one stored
    copy of the backbone that head-only models (trained on cached features) refer to."""
    return Path(root).absolute() / key / "model.safetensors"


def load_stage1_metrics(root: str | Path, key: str) -> dict | None:
    """The stored direct model's metrics (None when stage 1 of `key` was never completed): a cheap check."""
    path = Path(root) / key / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def load_stage1(root: str | Path, key: str) -> Stage1 | None:
    """The stored stage 1 for `key`, or None when it was never completed."""
    folder = Path(root) / key
    if not (folder / "metrics.json").exists():
        return None
    tensors = load_file(str(stage1_weights(root, key)))
    backbone = {k[len("backbone."):]: v for k, v in tensors.items() if k.startswith("backbone.")}
    head = {k[len("head."):]: v for k, v in tensors.items() if k.startswith("head.")}
    return Stage1(
        key=key, backbone_state=backbone, head_state=head,
        train_features=np.load(folder / "train_features.npy", allow_pickle=False),
        val_features=np.load(folder / "val_features.npy", allow_pickle=False),
        metrics=json.loads((folder / "metrics.json").read_text()),
    )


@functools.lru_cache(maxsize=2)
def stored_stage1(root: str, key: str) -> Stage1:
    """`load_stage1`, once per process and key (a reused Tune actor runs many trials on one stage 1); a
    stage 1 that was never stored is an error naming the fix."""
    stage = load_stage1(root, key)
    if stage is None:
        raise FileNotFoundError(f"stage 1 {key} is missing from {root}: run `imlgcn study resume` to train it again")
    return stage
