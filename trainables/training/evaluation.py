"""Forward passes over a whole split: scores for the metrics, pooled features for the embeddings.

Each rank runs its strided shard and the rows are gathered, so mAP is always computed on the full
validation set (never an average of per-shard mAPs).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from trainables.training.metrics import multilabel_metrics
from trainables.training.runtime import Runtime


def shard_loader(dataset: Dataset, runtime: Runtime, batch_size: int, workers: int) -> DataLoader:
    """An in-order loader over this rank's strided shard of `dataset`."""
    indices = runtime.shard(len(dataset)).tolist()
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False,
                      num_workers=workers, pin_memory=runtime.device.type == "cuda")


@torch.no_grad()
def forward_rows(fn: Callable[[torch.Tensor], torch.Tensor], dataset: Dataset, runtime: Runtime,
                 batch_size: int, workers: int = 0) -> np.ndarray:
    """`fn(images)` for every sample of `dataset`, in dataset order, on every rank (float32)."""
    rows = []
    for images, _ in shard_loader(dataset, runtime, batch_size, workers):
        with runtime.autocast():
            rows.append(fn(runtime.to_device(images)).float().cpu().numpy())
    local = np.concatenate(rows) if rows else np.zeros((0, 0), dtype=np.float32)
    return runtime.gather_rows(local.astype(np.float32, copy=False), len(dataset))


def evaluate_scores(scores: np.ndarray, targets: np.ndarray) -> dict:
    """Metrics in percent from probabilities on the full split (targets may hold -1 = ignore), plus
    `class_AP`: each class's AP in percent (NaN for a class without a positive), for per-class comparisons."""
    return multilabel_metrics(scores, targets, per_class=True)


@torch.no_grad()
def evaluate_model(model: torch.nn.Module, dataset: Dataset, targets: np.ndarray, runtime: Runtime,
                   batch_size: int, workers: int = 0) -> dict[str, float]:
    """Probabilities sigmoid(model(x)) over the split, then mAP, CP, CR, CF1, OP, OR, OF1 (+ top-3)."""
    was_training = model.training
    model.eval()
    scores = forward_rows(lambda x: torch.sigmoid(model(x)), dataset, runtime, batch_size, workers)
    model.train(was_training)
    return evaluate_scores(scores, targets)
