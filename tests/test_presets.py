"""Every shipped preset trains end to end with `imlgcn train`: its own backbone, loss, schedule,
augmentation and GCN settings, overridden only for size, weights, device and what the tiny data forces
(image size and counts, epochs, pretrained=false, use_gpu=false, pca_dim); paper-coco also data parallel
on two CPU workers; the demo's run is also checked in MLflow and served by `imlgcn predict`. The durations are printed (-s or the report's captured output) for the closing note."""

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest

from study.driver.config import preset_names, preset_values
from tests.mlflow_template import migrated_db
from trainables.models.model import count_parameters

pytestmark = pytest.mark.slow

EXE = str(Path(sys.executable).with_name("imlgcn"))
ON_CPU = ["pretrained=false", "use_gpu=false", "loader_workers=0"]
TINY_COCO = ["image_size=32", "pretrain_epochs=1", "epochs=1", "pca_dim=0"]
CASES = {  # preset -> overrides beyond ON_CPU (the tiny COCO-format folder is added for the coco-format ones)
    "demo": ["synthetic_train_images=48", "synthetic_val_images=24", "image_size=32", "pretrain_epochs=1",
             "epochs=1"],
    "paper-coco": [*TINY_COCO, "num_workers=2"],
    "paper-vg500": [*TINY_COCO, "loader_workers=1"],  # dataset=coco below: the data forces it
    "mlgcn-coco": ["image_size=32", "epochs=1"],  # pretrain_epochs 0 as ML-GCN: no stage 1 training
    "asl-coco": ["image_size=32", "pretrain_epochs=1"],  # epochs 0: the stage-1 direct model is the result
}


def train(tmp_path: Path, preset: str, sets: list[str], store: bool = True) -> tuple[subprocess.CompletedProcess, float]:
    if store:  # a training expected to run starts from a migrated store (tests.mlflow_template)
        migrated_db(tmp_path / "mlflow.db")
    began = time.perf_counter()
    done = subprocess.run([EXE, "train", "--preset", preset, "--storage", str(tmp_path / "runs"), "--tracking-uri",
                           f"sqlite:///{tmp_path}/mlflow.db", "--set", *sets], cwd=tmp_path, capture_output=True,
                          text=True, timeout=900, env={**__import__("os").environ, "IMLGCN_CACHE": str(tmp_path / "cache")})
    return done, time.perf_counter() - began


SAME_AS = {"paper-coco-sizes": "paper-coco"}  # a study's base config: trained by the other preset's case


def test_every_preset_has_a_case():
    assert sorted([*CASES, *SAME_AS]) == sorted(p for p in preset_names() if not p.startswith("study-"))
    for preset, trained in SAME_AS.items():
        assert preset_values(preset) == preset_values(trained)


@pytest.mark.parametrize("preset", sorted(CASES))
def test_preset_trains_end_to_end(tmp_path, tiny_data, preset):
    values = preset_values(preset)
    data = [] if values.get("dataset", "synthetic") == "synthetic" else ["dataset=coco", f"data_dir={tiny_data}"]
    done, seconds = train(tmp_path, preset, [*data, *ON_CPU, *CASES[preset]])
    assert done.returncode == 0, done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(f"\npreset {preset}: {seconds:.0f} s, mAP {result['mAP']:.2f}, {result['n_params']:,} parameters")
    assert 0 <= result["mAP"] <= 100 and math.isfinite(result["direct_mAP"])
    classes = result["num_classes"]
    embedding = values.get("embedding", "fpca")
    in_dim = {"fpca": classes, "word": 300}.get(embedding)  # pca_dim=0: k = C
    expected = count_parameters(values["backbone"], classes, embedding, in_dim=in_dim,
                                hidden=values.get("gcn_hidden", 1024))
    assert result["n_params"] == expected["total"] and result["n_params_inference"] == expected["inference"]
    started = "[workers] 2 Ray Train worker(s)" if "num_workers=2" in CASES[preset] else \
        "[trial] training in its own Tune trial process"  # one worker: no worker actor
    starts = done.stderr.count(started)
    assert starts == 1, f"the training started {starts} times (a restart)"
    if embedding == "none" and values.get("epochs") == 0:  # the direct model only: its own baseline
        assert result["direct_mAP"] == result["mAP"] and "[train] epoch" not in done.stderr
        assert "[warm-up]" not in done.stderr  # nothing trains after stage 1
    if values.get("lr_schedule") == "step":  # milestones 10,20,30 (or 30) past the one epoch: said, no decay
        assert "the learning rate never decays" in done.stderr
    if preset == "demo":
        _logged_to_mlflow_and_predicts(tmp_path, done, result, values)


def _logged_to_mlflow_and_predicts(tmp_path: Path, done: subprocess.CompletedProcess, result: dict, values: dict) -> None:
    """`imlgcn train`'s run in MLflow (params, final metrics, per-epoch curves), its stored stage 1 and
    model, on the loopback node, and `imlgcn predict` on the logged model."""
    import re

    from mlflow.tracking import MlflowClient

    from trainables.models.sizes import count_flops, deployed_model

    assert "training in its own Tune trial process on node 127.0.0.2" in done.stderr  # on the loopback node
    assert "[pretrain] epoch 1/1" in done.stderr  # progress, then each of the two models' stage 3, named
    assert "[train] epoch 1/1 of the direct model" in done.stderr and "[train] epoch 1/1 of IML-GCN" in done.stderr
    for key in ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "n_params"):
        assert key in result
    assert isinstance(result["n_params"], int)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    run = client.get_run(result["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["stage"] == "train"
    assert run.data.params["tau"] == str(values["tau"]) and run.data.params["backbone"] == values["backbone"]
    assert run.data.metrics["mAP"] == pytest.approx(result["mAP"]) and run.data.metrics["n_params"] == result["n_params"]
    for key in ("n_params", "n_params_inference", "flops", "latency_ms", "images_per_s"):  # the four sizes (+ speed)
        assert run.data.metrics[key] > 0, key
    assert run.data.tags["latency_device"] == result["latency_device"]
    assert re.fullmatch(r"cpu \(\d+ threads\)", result["latency_device"])  # timed on the CPU it trained on
    folded = deployed_model(values["backbone"], result["num_classes"], bias=False, meta=True)
    assert run.data.metrics["flops"] == count_flops(folded, 32)  # at the run's resolution
    assert [m.step for m in client.get_metric_history(run.info.run_id, "val_mAP")] == [1]
    assert [m.step for m in client.get_metric_history(run.info.run_id, "pretrain_mAP")] == [1]
    assert any((tmp_path / "runs" / "stage1").iterdir())  # stage 1 stored for reuse
    assert Path(result["model"], "model.safetensors").is_file()
    image = next((tmp_path / "cache").glob("synthetic/*/val2014/*"))
    predicted = subprocess.run([str(EXE), "predict", "--model", f"runs:/{result['run_id']}/model", "--json",
                                "--threshold", "0", "--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db", str(image)],
                               cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert predicted.returncode == 0, predicted.stderr[-3000:]
    labels = json.loads(predicted.stdout)["labels"]
    assert len(labels) == result["num_classes"] and all(0 <= x["probability"] <= 1 for x in labels)


def test_preset_pca_dim_larger_than_the_classes_is_one_line(tmp_path, tiny_data):
    """paper-coco's k = 80 on a 5-class data set: an error naming the fix, before Ray starts."""
    done, seconds = train(tmp_path, "paper-coco", ["dataset=coco", f"data_dir={tiny_data}", *ON_CPU, "image_size=32"],
                          store=False)
    assert done.returncode == 2 and seconds < 60
    assert done.stderr.strip().splitlines()[-1] == (
        "imlgcn: error: pca_dim=80 exceeds the 5 classes of the data set: use pca_dim <= 5 (0 = 5)")
    assert not (tmp_path / "mlflow.db").exists()
