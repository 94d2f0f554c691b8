"""Helpers of the end-to-end study tests: the `imlgcn` command on a tiny COCO-format folder, and MLflow's runs."""

import subprocess
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

from tests.mlflow_template import migrated_db

EXE = str(Path(sys.executable).with_name("imlgcn"))


def tiny_sets(data: str, fast: bool = True) -> list[str]:
    return ["--set", "dataset=coco", f"data_dir={data}", "backbone=test_resnet", "image_size=32",
            "pretrain_epochs=1", "epochs=1", "gcn_hidden=16", "batch_size=16", f"finetune_backbone={not fast}"]


def imlgcn(tmp_path, *args, timeout=900, check=True, db="mlflow.db", env=None) -> subprocess.CompletedProcess:
    if check:  # a command expected to succeed starts from a migrated store (tests.mlflow_template)
        migrated_db(tmp_path / db)
    done = subprocess.run([EXE, *args, "--storage", str(tmp_path / "studies"), "--tracking-uri",
                           f"sqlite:///{tmp_path}/{db}"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=timeout, env=env)
    if check:
        assert done.returncode == 0, done.stderr[-4000:]
    return done


def runs(tmp_path, name: str, stage: str, status: str | None = "FINISHED", db: str = "mlflow.db",
         level: str | None = None) -> list:
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/{db}")
    experiment = client.get_experiment_by_name(name)
    query = f"tags.stage = '{stage}'" + (f" and tags.level = '{level}'" if level else "")
    found = client.search_runs([experiment.experiment_id], query, max_results=5000)
    return [r for r in found if status is None or r.info.status == status]


PAPER_COCO_ON_CPU = ["pretrained=false", "use_gpu=false", "pca_dim=0", "loader_workers=0"]
