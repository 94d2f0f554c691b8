"""Hand-worked checks of trainables.training.losses."""

import math

import pytest
import torch
import torch.nn.functional as F

from trainables.training.losses import LOSSES, AsymmetricLoss, MaskedBCEWithLogits, build_loss

LOG2 = math.log(2.0)


def _one(loss, logit, target):
    return loss(torch.tensor([[logit]]), torch.tensor([[target]])).item()


def test_positive_hand_worked():
    # x = 0 -> s = 1/2: -log(1/2) (1 - 1/2)^gamma_pos
    assert _one(AsymmetricLoss(gamma_pos=0.0), 0.0, 1.0) == pytest.approx(LOG2)
    assert _one(AsymmetricLoss(gamma_pos=1.0), 0.0, 1.0) == pytest.approx(LOG2 * 0.5)


def test_negative_hand_worked_without_and_with_clip():
    # clip 0: s_neg = 1/2, weight (1 - 1/2)^4 = 1/16 -> log 2 / 16 = 0.04332
    assert _one(AsymmetricLoss(gamma_neg=4.0, clip=0.0), 0.0, 0.0) == pytest.approx(LOG2 / 16)
    # clip 0.05: s_neg = 0.55, weight 0.45^4 = 0.04100625 -> -log(0.55) * 0.04100625 = 0.024515
    expected = -math.log(0.55) * 0.45**4
    assert _one(AsymmetricLoss(gamma_neg=4.0, clip=0.05), 0.0, 0.0) == pytest.approx(expected, rel=1e-6)
    # easy negative: x = -3, s = 0.0474, 1 - s + 0.05 > 1 -> s_neg = 1 -> loss exactly 0
    assert _one(AsymmetricLoss(clip=0.05), -3.0, 0.0) == 0.0


def test_gamma_zero_clip_zero_is_bce_sum():
    torch.manual_seed(0)
    logits = torch.randn(8, 5) * 3
    targets = (torch.rand(8, 5) < 0.3).float()
    asl = AsymmetricLoss(gamma_neg=0.0, gamma_pos=0.0, clip=0.0)(logits, targets)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    assert asl.item() == pytest.approx(bce.item(), rel=1e-5)
    assert MaskedBCEWithLogits()(logits, targets).item() == pytest.approx(bce.item(), rel=1e-6)


@pytest.mark.parametrize("loss", [AsymmetricLoss(), MaskedBCEWithLogits()])
def test_minus_one_targets_are_ignored(loss):
    torch.manual_seed(1)
    logits = torch.randn(4, 3, requires_grad=True)
    targets = torch.tensor([[1.0, 0, -1], [0, -1, 1], [1, 1, 0], [-1, 0, 0]])
    total = loss(logits, targets)
    keep = targets != -1
    expected = loss.__class__(reduction="none")(logits, targets.clamp(min=0))[keep].sum()
    assert total.item() == pytest.approx(expected.item(), rel=1e-6)
    total.backward()
    assert torch.all(logits.grad[~keep] == 0)


def test_gradients_finite_at_saturated_logits():
    logits = torch.tensor([[-100.0, -20.0, 0.0, 20.0, 100.0]] * 2, requires_grad=True)
    targets = torch.tensor([[1.0] * 5, [0.0] * 5])
    for loss in (AsymmetricLoss(), AsymmetricLoss(gamma_pos=0.5, gamma_neg=0.5, clip=0.0), MaskedBCEWithLogits()):
        logits.grad = None
        value = loss(logits, targets)
        value.backward()
        assert torch.isfinite(value) and torch.isfinite(logits.grad).all()


def test_focal_weight_gradient_and_detach():
    # negative, x = 0, clip 0, gamma 4: L = -log(1 - s) s^4, s = 1/2
    # detached weight: dL/dx = s * s^4 = 1/32
    # full gradient adds -log(1 - s) * 4 s^3 * s (1 - s) = log 2 * 4 / 8 / 4 = log 2 / 8
    for detach, expected in ((True, 1 / 32), (False, 1 / 32 + LOG2 / 8)):
        x = torch.zeros(1, 1, requires_grad=True)
        AsymmetricLoss(gamma_neg=4.0, clip=0.0, detach_focal_weight=detach)(x, torch.zeros(1, 1)).backward()
        assert x.grad.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("x, y, gamma_pos, expected", [
    # positive, s = 1/2, gamma_pos = 0: dL/dx = -(1 - s) = -0.5
    (0.0, 1.0, 0.0, -0.5),
    # positive, gamma_pos = 1, weight (1 - s) = 1/2 held constant: -(1/2)(1/2) = -0.25
    (0.0, 1.0, 1.0, -0.25),
    # negative, s = 1/2, clip 0.05: s_neg = 0.55, w = 0.45^4 = 0.04100625, dL/dx = w * s (1 - s) / s_neg
    (0.0, 0.0, 0.0, 0.45 ** 4 * 0.25 / 0.55),
    # negative, x = 1: s = 0.7310586, s_neg = 0.3189414, w = (1 - s_neg)^4
    (1.0, 0.0, 0.0, (0.7310585786300049 - 0.05) ** 4 * 0.7310585786300049 * 0.2689414213699951 / 0.3189414213699951),
    # negative below the clip: s = 0.0180 < 0.05, s_neg = 1 (clamped): no gradient
    (-4.0, 0.0, 0.0, 0.0),
])
def test_default_gradient_holds_the_focusing_weights_constant(x, y, gamma_pos, expected):
    """ASL as its authors train it: d loss / d logit is the closed form with constant (1 - p_t)^gamma."""
    logits = torch.tensor([[x]], dtype=torch.float64, requires_grad=True)
    AsymmetricLoss(gamma_neg=4.0, gamma_pos=gamma_pos, clip=0.05)(logits, torch.tensor([[y]], dtype=torch.float64)).backward()
    assert logits.grad.item() == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_differentiating_the_weights_is_an_explicit_option_with_larger_negative_gradients():
    """At s = 1/2 (clip 0.05) the differentiable variant adds -log(s_neg) * 4 (1 - s_neg)^3 * s (1 - s)."""
    constant = 0.45 ** 4 * 0.25 / 0.55
    extra = -math.log(0.55) * 4 * 0.45 ** 3 * 0.25
    grads = {}
    for focal_grad in (False, True):
        logits = torch.zeros(1, 1, dtype=torch.float64, requires_grad=True)
        build_loss("asl", focal_grad=focal_grad)(logits, torch.zeros(1, 1, dtype=torch.float64)).backward()
        grads[focal_grad] = logits.grad.item()
    assert grads[False] == pytest.approx(constant, rel=1e-9) and grads[True] == pytest.approx(constant + extra, rel=1e-9)
    assert 3 < grads[True] / grads[False] < 5


def test_grad_mode_untouched():
    with torch.no_grad():
        AsymmetricLoss()(torch.randn(2, 3), torch.ones(2, 3))
        assert not torch.is_grad_enabled()


def test_reductions():
    torch.manual_seed(2)
    logits = torch.randn(4, 3)
    targets = torch.tensor([[1.0, 0, -1], [0, 1, 1], [1, 1, 0], [0, 0, 0]])
    total = AsymmetricLoss()(logits, targets)
    assert AsymmetricLoss(reduction="mean")(logits, targets).item() == pytest.approx(total.item() / 4)
    per = AsymmetricLoss(reduction="none")(logits, targets)
    assert per.shape == (4, 3) and per[0, 2].item() == 0.0
    assert per.sum().item() == pytest.approx(total.item())
    with pytest.raises(ValueError, match="reduction"):
        AsymmetricLoss(reduction="avg")


def test_build_loss_and_errors():
    asl = build_loss("asl", gamma_neg=2.0, gamma_pos=1.0, clip=0.1)
    assert isinstance(asl, AsymmetricLoss) and (asl.gamma_neg, asl.gamma_pos, asl.clip) == (2.0, 1.0, 0.1)
    assert isinstance(build_loss("bce", 4.0, 0.0, 0.05), MaskedBCEWithLogits)
    assert set(LOSSES) == {"asl", "bce"}
    with pytest.raises(ValueError, match="unknown loss 'focal'"):
        build_loss("focal", 4.0, 0.0, 0.05)
    with pytest.raises(ValueError, match="differ"):
        AsymmetricLoss()(torch.zeros(2, 3), torch.zeros(3, 2))


def test_half_precision_logits_stay_finite():
    # in float16 eps = 1e-8 would round to 0 and 0 * log(0) = NaN; the loss promotes to float32
    logits = torch.tensor([[-30.0, 30.0, 0.0]], dtype=torch.float16)
    value = AsymmetricLoss(gamma_pos=1.0)(logits, torch.tensor([[0.0, 1.0, 1.0]]))
    assert value.dtype == torch.float32 and torch.isfinite(value)
