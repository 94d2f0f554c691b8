"""Runtime: where a stage runs (rank, world size, device) and the few collectives the stages need.

The stage functions take a Runtime instead of calling Ray, so they run unchanged in a plain process
(tests, notebooks) and inside a Ray Train worker (`ray_runtime.worker_runtime()` builds that one).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

Report = Callable[[dict, "str | None"], None]


def discard_report(metrics: dict, checkpoint_dir: str | None) -> None:
    """Default reporter outside Ray: the caller reads the returned metrics instead; the checkpoint folder
    it owns is deleted."""
    if checkpoint_dir:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)


@dataclass
class Runtime:
    """One process of a (possibly data-parallel) run.

    `report(metrics, checkpoint_dir)` hands per-epoch results (and rank 0's checkpoint folder, which the
    reporter then owns and deletes) to whoever drives the run; `checkpoint_dir` is the folder of a
    restored checkpoint, if any.
    """

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    report: Report = discard_report
    checkpoint_dir: str | None = None
    staging_dir: str | None = None  # where checkpoint folders are made before reporting (None = the temp folder)
    wrap_model: Callable[[nn.Module], nn.Module] | None = None
    autocast_dtype: torch.dtype | None = None  # mixed precision (bf16 / fp16); None = fp32
    channels_last: bool = False  # NHWC images and weights (GPU only)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase (data, model, epochs, ...)
    started_at: float = field(default_factory=time.time)  # when the run started (its trial, where it has one)

    @contextlib.contextmanager
    def timed(self, phase: str):
        """Add the block's wall time to timings[phase]: where a run's time goes, measured, not guessed."""
        began = time.perf_counter()
        try:
            yield
        finally:
            self.timings[phase] = self.timings.get(phase, 0.0) + time.perf_counter() - began

    def first_step(self) -> None:
        """Called before every training step: the first call records `startup`, the seconds from the run's
        start to its first step (everything a run pays before it trains)."""
        self.timings.setdefault("startup", time.time() - self.started_at)

    def configure(self, precision: str, channels_last: bool) -> None:
        """Set mixed precision and memory format from the config, for this runtime's device."""
        self.autocast_dtype = precision_dtype(precision, self.device)
        self.channels_last = channels_last and self.device.type == "cuda"

    def autocast(self) -> torch.autocast:
        return torch.autocast(self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None)

    def grad_scaler(self) -> torch.amp.GradScaler:
        """Loss scaling, needed by fp16 only (bf16 has fp32's range); disabled otherwise."""
        return torch.amp.GradScaler(self.device.type, enabled=self.autocast_dtype == torch.float16)

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        """Move a batch to the device (asynchronously from pinned memory), NHWC for images when asked."""
        batch = batch.to(self.device, non_blocking=True)
        if self.channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int) -> np.ndarray:
        """Indices of the n samples this rank evaluates (strided: every sample exactly once)."""
        return np.arange(self.rank, n, self.world_size)

    def wrap(self, model: nn.Module) -> nn.Module:
        """Move to the device and, in a data-parallel run, wrap for gradient all-reduce (DDP)."""
        model = model.to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
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


def precision_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: fp32 -> None; auto -> bf16 on a GPU that supports it, else fp16, and fp32 on CPU."""
    if precision == "fp32" or (precision == "auto" and device.type != "cuda"):
        return None
    if precision == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
