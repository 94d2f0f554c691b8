"""Benchmark: IML-GCN training steps of the paper-coco preset (TResNet-M, 448 px, ASL, F_PCA k = 80) on
synthetic images, in fp32 and in each mixed-precision / memory-format setting the preset can use.
Prints images/s, the ratio to fp32 and peak GPU memory per setting.

It runs the project's own training step (`trainables.stages.stages.train_epoch` under a configured `Runtime`):
autocast, grad scaler, channels-last and the Adam update, on one batch kept on the device, so it
measures the model and not the data pipeline. No weights are downloaded (random init: same speed).

    python bench/gpu_throughput.py                      # on a GPU: a few hundred steps per setting
    python bench/gpu_throughput.py --device cpu --set backbone=test_resnet image_size=64 --steps 3 --warmup 1
"""

from __future__ import annotations

import argparse
import time

import torch


def build(config, device: torch.device):
    """The preset's IML-GCN on the COCO label graph shape: C = 80 labels, k = pca_dim node features."""
    from trainables.models.model import build_model

    classes = 80
    features = torch.randn(classes, config.pca_dim or classes)
    adjacency = torch.full((classes, classes), 1.0 / classes)
    model = build_model(config.backbone, classes, config.embedding, node_features=features,
                        adjacency=adjacency, hidden=config.gcn_hidden)
    return model, classes


def measure(config, device: torch.device, precision: str, channels_last: bool, steps: int, warmup: int,
            batch_size: int) -> tuple[float, float]:
    """(images/s, peak memory in GiB) of `steps` training steps after `warmup` steps."""
    from trainables.training.losses import build_loss
    from trainables.training.runtime import Runtime
    from trainables.training.epochs import train_epoch

    torch.manual_seed(0)
    runtime = Runtime(device=device)
    runtime.configure(precision, channels_last)
    model, classes = build(config, device)
    model = runtime.wrap(model).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=config.gcn_lr, weight_decay=config.weight_decay)
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_focal_grad)
    scaler = runtime.grad_scaler()
    images = torch.randn(batch_size, 3, config.image_size, config.image_size, device=device)
    targets = (torch.rand(batch_size, classes, device=device) < 0.04).float()  # ~3 labels per image, as COCO
    train_epoch(model, [(images, targets)] * warmup, loss_fn, optimizer, runtime, scaler)
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    began = time.perf_counter()
    train_epoch(model, [(images, targets)] * steps, loss_fn, optimizer, runtime, scaler)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    return steps * batch_size / seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper-coco")
    parser.add_argument("--set", dest="assignments", nargs="+", default=[], metavar="KEY=VALUE")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--batch-size", type=int, help="per step (default: the preset's batch_size)")
    args = parser.parse_args()

    from study.driver.config import load_trial_config

    config = load_trial_config(args.preset, None, ["pretrained=false", *args.assignments])
    device = torch.device(args.device)
    batch = args.batch_size or config.batch_size
    settings = [("fp32", False), ("fp32", True), ("auto", False), ("auto", True)]
    if device.type == "cpu":
        settings = [("fp32", False), ("bf16", False)]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{args.preset}: {config.backbone} at {config.image_size} px, embedding {config.embedding}, "
          f"batch {batch}, {args.steps} steps after {args.warmup} warm-up, on {name}")
    base = None
    for precision, nhwc in settings:
        rate, peak = measure(config, device, precision, nhwc, args.steps, args.warmup, batch)
        base = base or rate
        dtype = precision if precision != "auto" else ("bf16" if device.type == "cuda" and
                                                       torch.cuda.is_bf16_supported() else "fp16")
        print(f"{dtype:>5} channels_last={str(nhwc):<5}  {rate:9.1f} images/s  x{rate / base:5.2f} vs fp32  "
              f"peak memory {peak:6.2f} GiB")


if __name__ == "__main__":
    main()
