"""A trained model's sizes on the accuracy-versus-size plane, measured in one place for every run.

- n_params: the paper's count (Table 1), the GCN's weights included;
- n_params_inference: the folded model's (`model.fold`): backbone + C x d (+ C biases for the direct
  model), what a user deploys; the GCN folds away, so it depends on neither tau, p, pca_dim nor embedding;
- flops: floating-point operations for one image at the run's resolution through the folded model,
  counted by `torch.utils.flop_counter.FlopCounterMode` on the meta device (no weights, no memory):
  2 per multiply-add of convolutions and matrix products; element-wise operations (activations,
  normalisation, pooling) are not counted, as in the GFLOPs that papers report;
- latency_ms: the median time of a batch-1 forward of the folded model on the device the run trained
  on, after warm-up, with the threads the run has (named in the run's MLflow tag `latency_device`);
  images_per_s: its throughput at batch THROUGHPUT_BATCH. Both are timed where the run trains, beside
  whatever else runs there: compare them within one study, not across machines.
The measures, their labels and units: trainables/size_measures.py (a new one is an entry there and its
measurement here). All but n_params depend only on (backbone, resolution, classes, head bias, device): they are measured
once per process and key, so a screening actor times each backbone once, not once per head.
"""

from __future__ import annotations

import functools
import statistics
import time

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainables.backbones import create_backbone, meta_backbone
from trainables.config import TrialConfig
from trainables.size_measures import DEVICE_KEY
from trainables.models.model import DirectModel, fold, model_parameter_count

WARM_UP = 3  # untimed forwards first: allocator, cuDNN autotuning, lazy initialisation
LATENCY_RUNS = (10, 50)  # batch-1 forwards timed: at least, at most
THROUGHPUT_RUNS = (2, 5)
TIME_BUDGET_S = 2.0  # stop timing once this much is spent (after the minimum)
THROUGHPUT_BATCH = 64


def deployed_model(backbone: str, num_classes: int, bias: bool, meta: bool = False) -> nn.Module:
    """The folded inference form's architecture: the backbone and a linear C x d head (random weights;
    on the meta device no memory at all)."""
    body = meta_backbone(backbone) if meta else create_backbone(backbone)
    with torch.device("meta" if meta else "cpu"):
        return DirectModel(body, num_classes, bias=bias).eval()


def count_flops(model: nn.Module, image_size: int) -> int:
    """FLOPs of one image_size x image_size RGB image through `model` (see the module docstring), counted
    on the device the model's parameters are on (the meta device needs no memory)."""
    device = next(model.parameters()).device
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.empty(1, 3, image_size, image_size, device=device))
    return int(counter.get_total_flops())


def time_forward(model: nn.Module, batch: torch.Tensor, runs: tuple[int, int] = LATENCY_RUNS,
                 budget_s: float = TIME_BUDGET_S) -> float:
    """Median seconds of `model(batch)` over `runs` = (at least, at most) timed calls after WARM_UP
    untimed ones, stopping after the minimum once `budget_s` is spent (CUDA synchronised around each)."""
    cuda = batch.device.type == "cuda"
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(WARM_UP):
            model(batch)
        began = time.perf_counter()
        while len(times) < runs[1] and (len(times) < runs[0] or time.perf_counter() - began < budget_s):
            if cuda:
                torch.cuda.synchronize(batch.device)
            start = time.perf_counter()
            model(batch)
            if cuda:
                torch.cuda.synchronize(batch.device)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


@functools.lru_cache(maxsize=32)
def deployed_sizes(backbone: str, image_size: int, num_classes: int, bias: bool, device: str) -> dict[str, float]:
    """n_params_inference, flops, latency_ms and images_per_s of the folded model on `device`. The random
    weights and images it times are drawn with the caller's random state saved and restored: this is cached
    per process, so drawing from it would make a run's later shuffling depend on whether its process had
    timed this model before (the same seed gave another mAP in a reused process)."""
    meta = deployed_model(backbone, num_classes, bias, meta=True)
    cuda = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        real = deployed_model(backbone, num_classes, bias).to(device)
        one = torch.randn(1, 3, image_size, image_size, device=device)
        many = torch.randn(THROUGHPUT_BATCH, 3, image_size, image_size, device=device)
    return {"n_params_inference": float(sum(p.numel() for p in meta.parameters())),
            "flops": float(count_flops(meta, image_size)),
            "latency_ms": 1000.0 * time_forward(real, one),
            "images_per_s": THROUGHPUT_BATCH / time_forward(real, many, runs=THROUGHPUT_RUNS)}


def device_name(device: torch.device | str) -> str:
    """The device latency is measured on, for the MLflow tag: 'cpu (2 threads)' or 'cuda: <GPU name>'."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu ({torch.get_num_threads()} threads)"


def model_sizes(model: nn.Module, config: TrialConfig) -> dict[str, float | str]:
    """Every size measure of a built model (SIZE_KEYS, floats), timed on the device its parameters are on,
    which DEVICE_KEY names (a head trained without its backbone counts and times its backbone by name)."""
    folded = fold(model)
    device = next(folded.parameters()).device
    bias = folded.head.bias is not None
    deployed = deployed_sizes(config.backbone, config.image_size, folded.head.out_features, bias, str(device))
    return {"n_params": float(model_parameter_count(model, config.backbone)), **deployed,
            DEVICE_KEY: device_name(device)}
