"""The same-budget direct model: the reference every IML-GCN result is compared with.

It continues the stage-1 direct model (backbone + linear head) for exactly the stage-3 budget of the
config it serves: epochs, head warm-up, schedule, learning rates (backbone_lr for the backbone, gcn_lr
for the head), batch, augmentation, fine-tuning or not, and seed. Only the head differs from IML-GCN's,
so a difference in mAP is the GCN's, not the extra epochs'. Its metrics are stored once per key beside
stage 1 and reused by every run with the same key.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import uuid
from pathlib import Path

from trainables.config import BASELINE, HEAD, TrialConfig, keys_of
from trainables.stages.stage_cache import stage1_key

BUDGET_FIELDS = keys_of(BASELINE)  # declared with each key in trainables.config
GCN_ONLY = tuple(k for k in keys_of(HEAD) if k not in BUDGET_FIELDS)  # the head settings a direct model lacks
METRICS_FILE = "metrics.json"


def baseline_config(config: TrialConfig) -> TrialConfig:
    """The direct model trained with `config`'s budget (the graph and node-feature settings play no part)."""
    defaults = TrialConfig()
    graph_free = {k: getattr(defaults, k) for k in GCN_ONLY if k != "embedding"}
    return dataclasses.replace(config, embedding="none", **graph_free)


def baseline_key(config: TrialConfig) -> str:
    """'baseline-<hash>' of the stage-1 key and the budget fields: one baseline per stage 1 and budget."""
    values = {"stage1": stage1_key(config), **{name: getattr(config, name) for name in BUDGET_FIELDS}}
    return "baseline-" + hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:16]


def load_baseline(stage1_dir: str | Path, key: str) -> dict | None:
    """The stored baseline metrics (mAP, ..., class_AP), or None before it was trained."""
    path = Path(stage1_dir) / key / METRICS_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def save_baseline(stage1_dir: str | Path, key: str, metrics: dict) -> None:
    """Store the metrics atomically (temp file + rename); of two racing writers the last one wins, with
    the same values (same key, same seed)."""
    folder = Path(stage1_dir) / key
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{METRICS_FILE}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(metrics, indent=1))
    os.replace(tmp, folder / METRICS_FILE)
