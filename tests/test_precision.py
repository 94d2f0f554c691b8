"""Mixed precision and memory format: the choice per device, and training steps that run under it."""

import pytest
import torch
from torch import nn

from trainables.training.losses import AsymmetricLoss
from trainables.training.runtime import Runtime, precision_dtype
from trainables.training.epochs import train_epoch


def test_precision_choice_per_device():
    cpu = torch.device("cpu")
    assert precision_dtype("auto", cpu) is None  # CPU: fp32 unless asked
    assert precision_dtype("fp32", cpu) is None
    assert precision_dtype("bf16", cpu) is torch.bfloat16 and precision_dtype("fp16", cpu) is torch.float16
    runtime = Runtime()
    runtime.configure("fp16", channels_last=True)
    assert runtime.grad_scaler().is_enabled() and not runtime.channels_last  # NHWC only on a GPU
    runtime.configure("bf16", channels_last=True)
    assert not runtime.grad_scaler().is_enabled()  # bf16 has fp32's range: no loss scaling


@pytest.mark.parametrize("precision", ["fp32", "bf16", "fp16"])
def test_train_epoch_under_each_precision_lowers_the_loss(precision):
    torch.manual_seed(0)
    runtime = Runtime()
    runtime.configure(precision, channels_last=False)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    images, targets = torch.randn(16, 3, 8, 8), (torch.rand(16, 3) > 0.5).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    scaler = runtime.grad_scaler()
    losses = [train_epoch(model, [(images, targets)], AsymmetricLoss(), optimizer, runtime, scaler)
              for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses))) and losses[-1] < losses[0]
    with runtime.autocast():
        dtype = model(images).dtype
    assert dtype == {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
