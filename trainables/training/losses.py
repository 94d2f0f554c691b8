"""Training losses: Asymmetric Loss (ASL, Ridnik et al. 2021) and a masked BCE baseline.

Both take logits and 0/1 targets, ignore targets equal to -1 (VOC's *difficult*), and sum by default,
as ASL's reference does, so their magnitudes compare.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

REDUCTIONS = ("sum", "mean", "none")


def _reduce(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """'sum' = total; 'mean' = total / batch size (rows, not elements); 'none' = B x C, ignored = 0."""
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / max(loss.shape[0], 1)
    return loss


def _check_reduction(reduction: str) -> None:
    """Fail at construction, not at the first batch, on an unknown reduction."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def _prepare(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits in at least float32, 0/1 targets in that dtype, mask of kept entries y != -1).

    Half precision is promoted because eps = 1e-8 rounds to 0 in float16 and log(0) * 0 would be NaN.
    """
    if logits.shape != targets.shape:
        raise ValueError(f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} differ; pass B x C both")
    x = logits.to(torch.promote_types(logits.dtype, torch.float32))
    keep = targets != -1
    y = torch.where(keep, targets, torch.zeros_like(targets)).to(x.dtype)
    return x, y, keep


class AsymmetricLoss(nn.Module):
    """ASL: focal-style down-weighting and probability shifting of easy negatives.

    s = sigmoid(x);  s_neg = min(1 - s + clip, 1) if clip > 0 else 1 - s;
    L = -sum( y log(max(s, eps)) (1 - s)^gamma_pos + (1 - y) log(max(s_neg, eps)) (1 - s_neg)^gamma_neg ),
    over entries with y != -1.

    As ASL's authors train (their train.py builds the loss with disable_torch_grad_focal_loss=True), the
    focusing weights w are constants in the backward pass: only the log terms carry gradient, so
        dL/dx = -(1 - s)^gamma_pos (1 - s)                      for a positive,
        dL/dx = (1 - s_neg)^gamma_neg s (1 - s) / s_neg          for a negative with s_neg < 1 (else 0).
    `detach_focal_weight=False` differentiates through w too (3-5x larger negative gradients at
    0.1 < s < 0.8, which undoes much of the asymmetry). The weights are detached with `.detach()`;
    autograd's global state is never touched (the reference's toggling turns grad on inside no_grad).
    """

    def __init__(
        self,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        reduction: str = "sum",
        detach_focal_weight: bool = True,
    ) -> None:
        super().__init__()
        if gamma_neg < 0 or gamma_pos < 0:
            raise ValueError(f"gamma_neg and gamma_pos must be >= 0, got {gamma_neg}, {gamma_pos}")
        if not 0.0 <= clip < 1.0:
            raise ValueError(f"clip must be in [0, 1), got {clip}; use 0 to disable probability shifting")
        if eps <= 0:
            raise ValueError(f"eps must be > 0, got {eps}; it bounds log() away from -inf")
        _check_reduction(reduction)
        self.gamma_neg, self.gamma_pos, self.clip, self.eps = gamma_neg, gamma_pos, clip, eps
        self.reduction, self.detach_focal_weight = reduction, detach_focal_weight

    def _focus(self, base: torch.Tensor, gamma: float) -> torch.Tensor | float:
        """(base)^gamma, skipped when gamma = 0 (avoids 0^0 and its gradient at base = 0)."""
        if gamma == 0:
            return 1.0
        weight = base.clamp(min=0.0).pow(gamma)
        return weight.detach() if self.detach_focal_weight else weight

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x, y, keep = _prepare(logits, targets)
        s = torch.sigmoid(x)
        s_neg = (1 - s + self.clip).clamp(max=1.0) if self.clip > 0 else 1 - s
        pos = y * torch.log(s.clamp(min=self.eps)) * self._focus(1 - s, self.gamma_pos)
        neg = (1 - y) * torch.log(s_neg.clamp(min=self.eps)) * self._focus(1 - s_neg, self.gamma_neg)
        loss = torch.where(keep, -(pos + neg), torch.zeros_like(pos))
        return _reduce(loss, self.reduction)


class MaskedBCEWithLogits(nn.Module):
    """Binary cross-entropy on logits, summed like ASL, ignoring targets equal to -1.

    L = -sum( y log sigmoid(x) + (1 - y) log(1 - sigmoid(x)) ) over entries with y != -1.
    """

    def __init__(self, reduction: str = "sum") -> None:
        super().__init__()
        _check_reduction(reduction)
        self.reduction = reduction

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        x, y, keep = _prepare(logits, targets)
        loss = F.binary_cross_entropy_with_logits(x, y, reduction="none")
        return _reduce(torch.where(keep, loss, torch.zeros_like(loss)), self.reduction)


LOSSES: dict[str, type[nn.Module]] = {"asl": AsymmetricLoss, "bce": MaskedBCEWithLogits}


def build_loss(name: str, gamma_neg: float = 4.0, gamma_pos: float = 0.0, clip: float = 0.05,
               focal_grad: bool = False) -> nn.Module:
    """The loss named in the config; the ASL knobs are ignored by "bce". focal_grad=True differentiates
    through ASL's focusing weights (not how its authors train)."""
    if name == "asl":
        return AsymmetricLoss(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip, detach_focal_weight=not focal_grad)
    if name == "bce":
        return MaskedBCEWithLogits()
    raise ValueError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
