"""`imlgcn train` end to end: real Ray Train (loopback), real SQLite MLflow, the tiny synthetic set."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

pytestmark = pytest.mark.slow


def test_imlgcn_train_logs_everything_to_mlflow(tmp_path, tiny_data):
    exe = Path(sys.executable).with_name("imlgcn")
    db = tmp_path / "store" / "mlflow.db"
    db.parent.mkdir()
    done = subprocess.run(
        [str(exe), "train", "--tracking-uri", f"sqlite:///{db}", "--storage", str(tmp_path / "runs"),
         "--set", "dataset=coco", f"data_dir={tiny_data}", "backbone=test_resnet", "image_size=32",
         "pretrain_epochs=1", "epochs=2", "gcn_hidden=16", "batch_size=16", "cpus_per_worker=1"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "n_params"):
        assert key in result
    assert isinstance(result["n_params"], int) and 0 <= result["mAP"] <= 100
    assert "rank 0 on node 127.0.0.2" in done.stderr  # Ray Train workers ran on the loopback node
    assert "[pretrain] epoch 1/1" in done.stderr and "[train] epoch 2/2" in done.stderr  # progress

    client = MlflowClient(tracking_uri=f"sqlite:///{db}")
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "train"
    assert run.data.params["tau"] == "0.1" and run.data.params["backbone"] == "test_resnet"
    assert run.data.metrics["mAP"] == pytest.approx(result["mAP"])
    assert run.data.metrics["n_params"] == result["n_params"]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mAP")] == [1, 2]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "pretrain_mAP")] == [1]
    assert any((tmp_path / "runs" / "stage1").iterdir())  # stage 1 stored for reuse
    assert Path(result["model"], "model.safetensors").is_file()
    image = next((Path(tiny_data) / "val2014").iterdir())
    predicted = subprocess.run([str(exe), "predict", "--model", f"runs:/{result['run_id']}/model", "--json",
                                "--threshold", "0", "--tracking-uri", f"sqlite:///{db}", str(image)],
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    labels = json.loads(predicted.stdout)["labels"]
    assert len(labels) == result["num_classes"] and all(0 <= x["probability"] <= 1 for x in labels)
