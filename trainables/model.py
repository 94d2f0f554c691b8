"""Models: the direct baseline (timm backbone + linear head) and IML-GCN (backbone + GCN label classifiers).

IML-GCN (Singh et al. 2022) keeps ML-GCN's GCN branch: two graph convolutions map the label node
features (C x in_dim) through the normalised label graph A_hat (C x C) to one classifier per label
(C x d), and logits = f @ W^T with f the backbone's pooled features (B x d). The graph and node features
are constants, so they are buffers (saved in the state dict, moved by `.to()`, never optimised).
"""

from __future__ import annotations

import math
from pathlib import Path

import timm
import torch
from torch import nn

EMBEDDINGS = ("none", "word", "fi", "fpca")
WORD_DIM = 300  # GloVe vectors, as ML-GCN
_CLASSIFIER_PREFIXES = ("head.", "fc.", "classifier.", "head_dist.")


class GraphConvolution(nn.Module):
    """H' = A_hat @ H @ W, as ML-GCN's layer: weight (in, out), no bias by default."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(out), 1/sqrt(out)), ML-GCN's init (stdv from weight.size(1), not fan-in)."""
        stdv = 1.0 / math.sqrt(self.weight.size(1))
        nn.init.uniform_(self.weight, -stdv, stdv)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -stdv, stdv)

    def forward(self, h: torch.Tensor, adjacency: torch.Tensor) -> torch.Tensor:
        out = adjacency @ (h @ self.weight)
        return out + self.bias if self.bias is not None else out


class IMLGCN(nn.Module):
    """Backbone + two-layer GCN whose outputs are the per-label classifiers (paper Fig. 1)."""

    def __init__(self, backbone: nn.Module, adjacency: torch.Tensor, node_features: torch.Tensor,
                 hidden: int = 1024) -> None:
        super().__init__()
        adjacency = torch.as_tensor(adjacency, dtype=torch.float32)
        node_features = torch.as_tensor(node_features, dtype=torch.float32)
        _check_graph(adjacency, node_features)
        self.backbone = backbone
        self.register_buffer("adjacency", adjacency.clone(), persistent=True)
        self.register_buffer("node_features", node_features.clone(), persistent=True)
        self.gc1 = GraphConvolution(node_features.shape[1], hidden)
        self.act = nn.LeakyReLU(0.2)
        self.gc2 = GraphConvolution(hidden, backbone.num_features)

    def classifiers(self) -> torch.Tensor:
        """Label classifiers W (C x d); depends only on the GCN, so the fast mode can skip the backbone."""
        h = self.act(self.gc1(self.node_features, self.adjacency))
        return self.gc2(h, self.adjacency)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features (B x d), e.g. cached ones when the backbone is frozen."""
        return features @ self.classifiers().t()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.forward_features(images))


class DirectModel(nn.Module):
    """The baseline (ASL's setting): backbone + linear head, same interface as IMLGCN."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.num_features, num_classes)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone(images)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.forward_features(images))


def _check_graph(adjacency: torch.Tensor, node_features: torch.Tensor, num_classes: int | None = None) -> None:
    c = adjacency.shape[0] if num_classes is None else num_classes
    if adjacency.ndim != 2 or tuple(adjacency.shape) != (c, c):
        raise ValueError(f"adjacency must be C x C with C = {c}, got {tuple(adjacency.shape)}")
    if node_features.ndim != 2 or node_features.shape[0] != c:
        raise ValueError(f"node_features must be C x k with C = {c}, got {tuple(node_features.shape)}")


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


def build_model(backbone_name: str, num_classes: int, embedding: str, node_features=None, adjacency=None,
                hidden: int = 1024, pretrained: bool = False, pretrained_path: str = "") -> nn.Module:
    """DirectModel for embedding 'none', else IMLGCN on the given A_hat (C x C) and node features (C x k)."""
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    if embedding != "none":
        if node_features is None or adjacency is None:
            raise ValueError(f"embedding {embedding!r} needs node_features (C x k) and adjacency (C x C)")
        node_features = torch.as_tensor(node_features, dtype=torch.float32)
        adjacency = torch.as_tensor(adjacency, dtype=torch.float32)
        _check_graph(adjacency, node_features, num_classes)
    backbone = create_backbone(backbone_name, pretrained, pretrained_path)
    if embedding == "none":
        return DirectModel(backbone, num_classes)
    return IMLGCN(backbone, adjacency, node_features, hidden)


def model_parameter_count(model: nn.Module) -> int:
    """Trainable and frozen parameters of a built model; buffers (graph, node features, BN stats) excluded."""
    return sum(p.numel() for p in model.parameters())


def meta_backbone(name: str) -> nn.Module:
    """A headless backbone built on the meta device (no memory, no init cost), for its shape and config."""
    try:
        with torch.device("meta"):
            return timm.create_model(name, pretrained=False, num_classes=0)
    except Exception:  # a model whose constructor needs real tensors
        return timm.create_model(name, pretrained=False, num_classes=0)


def _backbone_size(name: str) -> tuple[int, int]:
    """(parameters, d) of a headless backbone."""
    backbone = meta_backbone(name)
    return model_parameter_count(backbone), backbone.num_features


def count_parameters(backbone_name: str, num_classes: int, embedding: str, in_dim: int | None = None,
                     hidden: int = 1024) -> dict[str, int]:
    """Parameter counts as paper Table 1, without building the GCN data: {"total", "backbone", "head"}.

    in_dim: word -> given (default 300); fi -> d (the backbone's feature size); fpca -> k (required).
    """
    if embedding not in EMBEDDINGS:
        raise ValueError(f"embedding must be one of {EMBEDDINGS}, got {embedding!r}")
    backbone, d = _backbone_size(backbone_name)
    if embedding == "none":
        head = d * num_classes + num_classes
    else:
        if embedding == "word":
            in_dim = WORD_DIM if in_dim is None else in_dim
        elif embedding == "fi":
            if in_dim not in (None, d):
                raise ValueError(f"embedding 'fi' has in_dim = d = {d} for {backbone_name}, got {in_dim}")
            in_dim = d
        elif in_dim is None:
            raise ValueError("embedding 'fpca' needs in_dim = k, the number of PCA components")
        head = in_dim * hidden + hidden * d
    return {"total": backbone + head, "backbone": backbone, "head": head}
