"""Runtime: where a stage runs (rank, world size, device) and the few collectives the stages need.

The stage functions take a Runtime instead of calling Ray, so they run unchanged in a plain process
(tests, notebooks) and inside a Ray Train worker (`train_loop.ray_runtime()` builds that one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

Report = Callable[[dict, "str | None"], None]


def _no_report(metrics: dict, checkpoint_dir: str | None) -> None:
    """Default reporter outside Ray: the caller reads the returned metrics instead."""


@dataclass
class Runtime:
    """One process of a (possibly data-parallel) run.

    `report(metrics, checkpoint_dir)` hands per-epoch results (and rank 0's checkpoint folder) to
    whoever drives the run; `checkpoint_dir` is the folder of a restored checkpoint, if any.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    report: Report = _no_report
    checkpoint_dir: str | None = None
    wrap_model: Callable[[nn.Module], nn.Module] | None = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> np.ndarray:
        """Indices of the n samples this rank evaluates (strided: every sample exactly once)."""
        return np.arange(self.rank, n, self.world_size)

    def wrap(self, model: nn.Module) -> nn.Module:
        """Move to the device and, in a data-parallel run, wrap for gradient all-reduce (DDP)."""
        model = model.to(self.device)
        if self.world_size > 1 and self.wrap_model is not None:
            return self.wrap_model(model)
        return model

    def gather_rows(self, rows: np.ndarray, n: int) -> np.ndarray:
        """Reassemble per-rank rows computed on `shard(n)` into the full (n, ...) array on every rank."""
        if self.world_size == 1:
            return rows
        parts: list = [None] * self.world_size
        dist.all_gather_object(parts, rows)
        full = np.empty((n,) + rows.shape[1:], dtype=rows.dtype)
        for r, part in enumerate(parts):
            full[np.arange(r, n, self.world_size)] = part
        return full

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()
