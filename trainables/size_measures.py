"""The size measures every run records: one entry per measure, the one home of what each means and how it reads.

Why here: a measure's key, its label in sentences, its plot axis and unit, its number format in tables and
the `--size` name that makes it a study's second objective used to be spread over the metrics' key list,
the study record, the static and interactive plots and the front table's dicts and if-chains. They all read
this table now. It imports no project code, so every room of trainables and study can read it.

How each is measured (the code: trainables/models/sizes.py):
- n_params = sum of the trained model's parameter elements, the GCN's weights included (paper Table 1);
- n_params_inference = the same for the folded model (`model.fold`): backbone + C x d (+ C biases for the
  direct model), what deployment keeps;
- flops = 2 x multiply-adds of convolutions and matrix products for one image at the run's resolution
  through the folded model (element-wise operations not counted), reported as GFLOPs = flops / 1e9;
- latency_ms = median wall time of a batch-1 forward of the folded model after warm-up, on the run's device;
- images_per_s = THROUGHPUT_BATCH / median time of a batch forward: higher is better, so never a study's size.

Adding a size measure: an entry here, and its measurement in trainables/models/sizes.py (`deployed_sizes`
for a measure of the folded model, `model_sizes` for one of the trained model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DEVICE_KEY = "latency_device"  # the result key and MLflow tag naming the device the timings were taken on


@dataclass(frozen=True)
class SizeMeasure:
    """One size measure: its metric key and how reports name, scale and print it."""

    key: str  # the result key, MLflow metric and report column (trials.csv)
    label: str  # how a sentence names it: "on mAP and <label>"
    how: str  # how it is measured, one line
    axis: str  # the plots' axis title, in the unit of `scale`
    scale: float  # plots and short cells show value / scale (1e6: millions; 1e9: GFLOPs from FLOPs)
    unit: str  # the unit a text gives after value / scale ("GFLOPs", "ms"); "" = an exact count, 4,922,488
    short: str  # the front table's name: "<short> vs direct", and its own column when it is not always shown
    column: str  # its column in the HTML page's table of every trial
    option: str = ""  # the `imlgcn study run --size` value that makes it the study's size ("" = none)
    always_shown: bool = False  # tables show it whatever the study's size (both parameter counts)
    minimise: bool = True  # smaller is better (a study's size is minimised: only such a measure has an option)

    @property
    def count(self) -> bool:
        """An exact count (parameters): an integer column, printed with thousands separators."""
        return self.unit == ""

    def text(self, value: float) -> str:
        """The size as a reader wants it: 4,922,488 (parameters), 0.179 GFLOPs, 3.1 ms."""
        return f"{int(round(value)):,}" if self.count else f"{value / self.scale:.3g} {self.unit}"

    def cell(self, value: object) -> str:
        """A table cell: 4,922,488 | 0.179 (GFLOPs) | 3.1 (ms); '-' when the value is unknown (None, NA, NaN)."""
        if not known(value):
            return "-"
        return f"{int(round(float(value))):,}" if self.count else f"{float(value) / self.scale:.3g}"

    def difference(self, value: float, base: float) -> str:
        """value - base, signed, in the cell's unit: +1,024 | -0.012 | +0.4."""
        change = float(value) - float(base)
        return f"{int(round(change)):+,}" if self.count else f"{change / self.scale:+.3g}"


def known(value: object) -> bool:
    """False for a missing value: None, pandas' NA (which has no truth value) or NaN."""
    if value is None or type(value).__name__ == "NAType":
        return False
    try:
        return not math.isnan(float(value))
    except (TypeError, ValueError):
        return True


SIZE_MEASURES: dict[str, SizeMeasure] = {m.key: m for m in (
    SizeMeasure("n_params", "parameters (the paper's count)", "every parameter of the trained model, GCN included",
                "parameters, the paper's count (millions)", 1e6, "", "params", "n_params", option="params",
                always_shown=True),
    SizeMeasure("n_params_inference", "inference parameters", "every parameter of the folded (deployed) model",
                "inference parameters, folded (millions)", 1e6, "", "params", "n_params_inference",
                option="inference_params", always_shown=True),
    SizeMeasure("flops", "FLOPs per image", "FLOPs of one image through the folded model, on the meta device",
                "GFLOPs per image", 1e9, "GFLOPs", "GFLOPs", "GFLOPs", option="flops"),
    SizeMeasure("latency_ms", "latency", "median batch-1 forward time of the folded model on the run's device",
                "batch-1 latency (ms)", 1.0, "ms", "ms", "latency ms", option="latency"),
    SizeMeasure("images_per_s", "throughput", "images a second through the folded model at batch 64",
                "images per second (batch 64)", 1.0, "images/s", "img/s", "images/s", minimise=False),
)}
SIZE_KEYS = tuple(SIZE_MEASURES)  # every run records all of them
COUNT_KEYS = tuple(k for k, m in SIZE_MEASURES.items() if m.count)  # integer columns
PLANE_KEYS = tuple(k for k, m in SIZE_MEASURES.items() if m.option)  # what a study may minimise, and the trial table shows
OPTIONS = {m.option: m.key for m in SIZE_MEASURES.values() if m.option}  # --size value -> metric key


def size_measure(key: str) -> SizeMeasure:
    """The entry `key`; an unknown key is a ValueError listing the known ones."""
    if key not in SIZE_MEASURES:
        raise ValueError(f"size measure {key!r} is not one of {', '.join(SIZE_KEYS)}")
    return SIZE_MEASURES[key]
