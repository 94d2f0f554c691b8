"""Models: the direct baseline (timm backbone + linear head) and IML-GCN (backbone + GCN label classifiers).

IML-GCN (Singh et al. 2022) keeps ML-GCN's GCN branch: two graph convolutions map the label node
features (C x in_dim) through the normalised label graph A_hat (C x C) to one classifier per label
(C x d), and logits = f @ W^T with f the backbone's pooled features (B x d). The graph and node features
are constants, so they are buffers (saved in the state dict, moved by `.to()`, never optimised).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainables.backbones import backbone_size, create_backbone, pooled_dim
from trainables.embeddings import FEATURE_DIM, WORD_DIM, embedding as embedding_entry


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

    def __init__(self, backbone: nn.Module | None, adjacency: torch.Tensor, node_features: torch.Tensor,
                 hidden: int = 1024, feature_dim: int | None = None) -> None:
        """backbone None builds the head alone (for cached features); it then needs feature_dim = d."""
        super().__init__()
        adjacency = torch.as_tensor(adjacency, dtype=torch.float32)
        node_features = torch.as_tensor(node_features, dtype=torch.float32)
        _check_graph(adjacency, node_features)
        self.backbone = backbone
        self.register_buffer("adjacency", adjacency.clone(), persistent=True)
        self.register_buffer("node_features", node_features.clone(), persistent=True)
        self.gc1 = GraphConvolution(node_features.shape[1], hidden)
        self.act = nn.LeakyReLU(0.2)
        self.gc2 = GraphConvolution(hidden, _feature_dim(backbone, feature_dim))

    def classifiers(self) -> torch.Tensor:
        """Label classifiers W (C x d); depends only on the GCN, so the fast mode can skip the backbone."""
        h = self.act(self.gc1(self.node_features, self.adjacency))
        return self.gc2(h, self.adjacency)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return _backbone_of(self)(images)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        """Logits from pooled features (B x d), e.g. cached ones when the backbone is frozen."""
        return features @ self.classifiers().t()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.forward_features(images))


class DirectModel(nn.Module):
    """The baseline (ASL's setting): backbone + linear head, same interface as IMLGCN."""

    def __init__(self, backbone: nn.Module | None, num_classes: int, feature_dim: int | None = None,
                 bias: bool = True) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(_feature_dim(backbone, feature_dim), num_classes, bias=bias)

    def forward_features(self, images: torch.Tensor) -> torch.Tensor:
        return _backbone_of(self)(images)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(features)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.forward_features(images))


def _feature_dim(backbone: nn.Module | None, feature_dim: int | None) -> int:
    """d: the backbone's pooled feature size, or the given one for a head built without its backbone."""
    if backbone is not None:
        return pooled_dim(backbone)
    if not feature_dim:
        raise ValueError("a head without a backbone needs feature_dim (the backbone's pooled feature size d)")
    return feature_dim


def _backbone_of(model: nn.Module) -> nn.Module:
    if model.backbone is None:
        raise ValueError("this model holds only its head: pass pooled features to logits_from_features")
    return model.backbone


def _check_graph(adjacency: torch.Tensor, node_features: torch.Tensor, num_classes: int | None = None) -> None:
    c = adjacency.shape[0] if num_classes is None else num_classes
    if adjacency.ndim != 2 or tuple(adjacency.shape) != (c, c):
        raise ValueError(f"adjacency must be C x C with C = {c}, got {tuple(adjacency.shape)}")
    if node_features.ndim != 2 or node_features.shape[0] != c:
        raise ValueError(f"node_features must be C x k with C = {c}, got {tuple(node_features.shape)}")


def build_model(backbone_name: str, num_classes: int, embedding: str, node_features=None, adjacency=None,
                hidden: int = 1024, pretrained: bool = False, pretrained_path: str = "",
                with_backbone: bool = True) -> nn.Module:
    """DirectModel for embedding 'none', else IMLGCN on the given A_hat (C x C) and node features (C x k).

    with_backbone=False builds only the head (the backbone's size d read from a meta-device copy): what
    trains on cached stage-1 features, without the memory and time of a backbone it would never run.
    """
    gcn = embedding_entry(embedding).has_head
    if gcn:
        if node_features is None or adjacency is None:
            raise ValueError(f"embedding {embedding!r} needs node_features (C x k) and adjacency (C x C)")
        node_features = torch.as_tensor(node_features, dtype=torch.float32)
        adjacency = torch.as_tensor(adjacency, dtype=torch.float32)
        _check_graph(adjacency, node_features, num_classes)
    backbone = create_backbone(backbone_name, pretrained, pretrained_path) if with_backbone else None
    d = None if with_backbone else backbone_size(backbone_name)[1]
    if not gcn:
        return DirectModel(backbone, num_classes, feature_dim=d)
    return IMLGCN(backbone, adjacency, node_features, hidden, feature_dim=d)


@torch.no_grad()
def fold(model: nn.Module) -> nn.Module:
    """The inference form of a trained model. IML-GCN's classifiers W = GCN(H0, A_hat) (C x d) do not
    depend on the image, so logits = f @ W^T is a bias-free linear head with weight W: backbone + C x d
    parameters instead of backbone + the GCN's weights, with the same scores. A direct model is returned
    as it is."""
    if not isinstance(model, IMLGCN):
        return model
    weights = model.classifiers().detach()
    folded = DirectModel(model.backbone, weights.shape[0], feature_dim=weights.shape[1], bias=False)
    folded.head.weight.copy_(weights)
    return folded.train(model.training)


def model_parameter_count(model: nn.Module, backbone_name: str | None = None) -> int:
    """Trainable and frozen parameters of a built model; buffers (graph, node features, BN stats) excluded.

    A head built without its backbone counts the backbone too (by `backbone_name`): n_params is always
    the whole model's, as paper Table 1.
    """
    own = sum(p.numel() for p in model.parameters())
    if getattr(model, "backbone", True) is None:
        if backbone_name is None:
            raise ValueError("a model without its backbone needs backbone_name to count the whole model")
        own += backbone_size(backbone_name)[0]
    return own


def count_parameters(backbone_name: str, num_classes: int, embedding: str, in_dim: int | None = None,
                     hidden: int = 1024) -> dict[str, int]:
    """Parameter counts as paper Table 1, without building the GCN data: {"total", "backbone", "head",
    "inference"}. "inference" is the folded model's size (see `fold`): backbone + C x d for IML-GCN.

    in_dim: H0's width (trainables.embeddings): word -> given (default WORD_DIM = 300); fi, fi_centred -> d
    (the backbone's feature size); fpca, random -> k (required).
    """
    entry = embedding_entry(embedding)
    backbone, d = backbone_size(backbone_name)
    if not entry.has_head:
        head = d * num_classes + num_classes
    else:
        if entry.width == FEATURE_DIM and in_dim not in (None, d):
            raise ValueError(f"embedding {embedding!r} has in_dim = d = {d} for {backbone_name}, got {in_dim}")
        in_dim = entry.input_width(d=d, k=in_dim, word_dim=WORD_DIM if in_dim is None else in_dim)
        if in_dim is None:
            raise ValueError(f"embedding {embedding!r} needs in_dim = k, the number of node feature columns")
        head = in_dim * hidden + hidden * d
    inference = backbone + (num_classes * d if entry.has_head else head)
    return {"total": backbone + head, "backbone": backbone, "head": head, "inference": inference}
