"""Soak: 100 screened configurations (level 1) on the tiny data set; the driver's resident memory stays flat."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mlflow_template import migrated_db

pytestmark = pytest.mark.slow

SCREENED = 100  # bench/study_speed.py and the sweep bench run thousands


def test_hundreds_of_screened_trials_keep_the_driver_memory_flat(tmp_path, tiny_data):
    exe = Path(sys.executable).with_name("imlgcn")
    migrated_db(tmp_path / "mlflow.db")
    done = subprocess.run(
        [str(exe), "--verbose", "study", "run", "--name", "soak", "--space", "small", "--screen", str(SCREENED),
         "--num-samples", "1", "--storage", str(tmp_path / "studies"), "--tracking-uri",
         f"sqlite:///{tmp_path}/mlflow.db", "--set", "dataset=coco", f"data_dir={tiny_data}", "image_size=32",
         "gcn_hidden=16", "batch_size=16", "finetune_backbone=false", "pretrain_epochs=1", "epochs=2",
         "keep_checkpoints=none"],
        cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    rss = {int(n): float(mb) for n, mb in re.findall(rf"screened (\d+)/{SCREENED} .*driver RSS (\d+) MB", done.stderr)}
    assert sorted(rss) == list(range(SCREENED // 10, SCREENED + 1, SCREENED // 10))
    first, last = rss[SCREENED // 10], rss[SCREENED]
    print(f"driver RSS: after {SCREENED // 10} screened {first:.0f} MB, after {SCREENED} {last:.0f} MB")  # pytest -s
    assert last - first < max(0.10 * first, 50.0), rss  # flat: under 10 % (or 50 MB) growth
    assert not (tmp_path / "studies" / "soak" / "models").exists() or not any(
        (tmp_path / "studies" / "soak" / "models").iterdir())  # keep_checkpoints=none saved no model
