"""timm backbones: a headless model (pooled B x d features), local weights loaded without unpickling
code, and meta-device copies that give a backbone's size and data config without memory or init cost.
"""

from __future__ import annotations

import functools

from pathlib import Path

import timm
import torch
from torch import nn

_CLASSIFIER_PREFIXES = ("head.", "fc.", "classifier.", "head_dist.")


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A local checkpoint without unpickling code: safetensors, or torch.load(weights_only=True)."""
    if not path.is_file():
        raise ValueError(f"pretrained_path {str(path)!r} does not exist or is not a file")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file
            state = load_file(str(path), device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # corrupt file, pickled code refused by weights_only, ...
        raise ValueError(f"cannot read weights from {str(path)!r}: {type(e).__name__}: {e}") from e
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise ValueError(f"{str(path)!r} holds a {type(state).__name__}, not a state dict")
    state = {k.removeprefix("module."): v for k, v in state.items()}  # DDP-saved checkpoints
    if any(k.startswith("backbone.") for k in state):  # a saved DirectModel / IMLGCN: keep its backbone
        state = {k.removeprefix("backbone."): v for k, v in state.items() if k.startswith("backbone.")}
    return state


def load_backbone_weights(backbone: nn.Module, path: str | Path) -> None:
    """Load a local weights file into a headless backbone; any missing or misshapen weight is an error."""
    path = Path(path)
    state = _read_state_dict(path)
    own = backbone.state_dict()
    state = {k: v for k, v in state.items() if k in own or not k.startswith(_CLASSIFIER_PREFIXES)}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    mismatched = [f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
                  for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or mismatched:
        raise ValueError(f"weights in {str(path)!r} do not fit {type(backbone).__name__}: "
                         f"{len(missing)} missing (e.g. {missing[:3]}), {len(mismatched)} mismatched "
                         f"(e.g. {mismatched[:3]}), {len(unexpected)} unexpected (e.g. {unexpected[:3]})")
    backbone.load_state_dict(state, strict=False)


def create_backbone(name: str, pretrained: bool = False, pretrained_path: str = "") -> nn.Module:
    """A headless timm model (pooled B x d output). A local `pretrained_path` wins over a download."""
    download = pretrained and not pretrained_path
    try:
        backbone = timm.create_model(name, pretrained=download, num_classes=0)
    except Exception as error:  # hub unreachable, no weights published for this name, ...
        if not download:
            raise
        raise ValueError(f"cannot fetch timm's pretrained weights of {name} ({type(error).__name__}): check "
                         "network access to the Hugging Face hub, or pass pretrained_path=FILE") from None
    if pretrained_path:
        load_backbone_weights(backbone, pretrained_path)
    return backbone


def meta_backbone(name: str) -> nn.Module:
    """A headless backbone built on the meta device (no memory, no init cost), for its shape and config."""
    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, num_classes=0)
    except Exception:  # a model whose constructor needs real tensors
        return timm.create_model(name, pretrained=False, num_classes=0)


def pooled_dim(backbone: nn.Module) -> int:
    """d, the size of the features a headless timm backbone returns: `head_hidden_size` where the model has
    a pre-logits layer after pooling (MobileNetV3, LCNet: 1,280 or 1,024), else `num_features`."""
    return int(getattr(backbone, "head_hidden_size", None) or backbone.num_features)


@functools.lru_cache(maxsize=64)
def backbone_size(name: str) -> tuple[int, int]:
    """(parameters, d) of a headless backbone; cached per name (building even a meta model is 50 ms, and a
    screened head asks twice)."""
    backbone = meta_backbone(name)
    return sum(p.numel() for p in backbone.parameters()), pooled_dim(backbone)
