"""Soak: 40 GCN-only trials on the embedded data; the driver's resident memory stays flat."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

TRIALS = 40


def test_forty_fast_trials_keep_the_driver_memory_flat(tmp_path):
    exe = Path(sys.executable).with_name("imlgcn")
    done = subprocess.run(
        [str(exe), "study", "run", "--name", "soak", "--space", "small", "--num-samples", str(TRIALS),
         "--storage", str(tmp_path / "studies"), "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db",
         "--set", "finetune_backbone=false", "pretrain_epochs=1", "epochs=2", "keep_checkpoints=none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    rss = {int(n): float(mb) for n, mb in re.findall(rf"done \((\d+)/{TRIALS}\).*driver RSS (\d+) MB", done.stderr)}
    assert sorted(rss) == list(range(1, TRIALS + 1))
    print(f"driver RSS: trial 5 {rss[5]:.0f} MB, trial 40 {rss[40]:.0f} MB")  # shown with pytest -s
    assert rss[40] - rss[5] < max(0.10 * rss[5], 50.0), rss  # flat: under 10 % (or 50 MB) growth
    assert not (tmp_path / "studies" / "soak" / "models").exists() or not any(
        (tmp_path / "studies" / "soak" / "models").iterdir())  # keep_checkpoints=none saved no model
