"""The `imlgcn` command: results on stdout, bad input as one line on stderr before Ray or MLflow start."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from study.cli import main

TABLE1 = [  # paper Table 1: (arguments, total parameters)
    ("--backbone tresnet_m --num-classes 80 --embedding none", 29_503_952),
    ("--backbone tresnet_l --num-classes 80 --embedding none", 53_750_896),
    ("--backbone resnet101 --num-classes 80 --embedding word", 44_904_512),
    ("--backbone tresnet_m --num-classes 80 --embedding fi", 33_534_336),
    ("--backbone tresnet_m --num-classes 80 --embedding fpca --pca-dim 80", 31_519_104),
]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("args, total", TABLE1)
def test_params_reproduces_table1(capsys, args, total):
    code, out, _ = run(capsys, "params", *args.split())
    counts = json.loads(out)
    assert code == 0 and counts["total"] == total and counts["backbone"] + counts["head"] == total


def test_params_of_the_demo_preset(capsys):
    code, out, _ = run(capsys, "params", "--preset", "demo", "--set", "embedding=none")
    assert code == 0 and set(json.loads(out)) == {"total", "backbone", "head"}


def test_data_synth_and_stats(capsys, tmp_path):
    code, out, _ = run(capsys, "data", "synth", "--out", str(tmp_path / "s"), "--classes", "4",
                       "--train-images", "20", "--val-images", "10", "--image-size", "32")
    assert code == 0 and json.loads(out)["classes"] == 4
    code, out, _ = run(capsys, "data", "stats", "--dataset", "coco", "--data-dir", str(tmp_path / "s"),
                       "--split", "val")
    stats = json.loads(out)
    assert code == 0 and stats["num_images"] == 10 and len(stats["classes"]) == len(stats["image_counts"]) == 4


def _broken_copy(tiny_data: str, tmp_path: Path, what: str) -> str:
    folder = tmp_path / "data"
    shutil.copytree(tiny_data, folder)
    if what == "annotation":
        (folder / "annotations" / "instances_train2014.json").write_text('{"images": [')
    else:
        next((folder / "val2014").iterdir()).write_bytes(b"not an image")
    return str(folder)


@pytest.mark.parametrize("case, fragment", [
    ("missing folder", "does not exist"),
    ("malformed annotation", "not valid JSON"),
    ("unknown backbone", "not a timm model"),
    ("tau out of range", "tau=1.5 is out of range"),
    ("p out of range", "p=-1.0 is out of range"),
    ("pca_dim too large", "pca_dim=6 exceeds the 5 classes"),
    ("unknown key", "unknown config key 'learning_rate'"),
    ("unreadable image", "val2014"),
])
def test_bad_input_fails_fast_with_one_line(capsys, monkeypatch, tmp_path, tiny_data, case, fragment):
    monkeypatch.chdir(tmp_path)
    data = {"missing folder": str(tmp_path / "nowhere"),
            "malformed annotation": _broken_copy(tiny_data, tmp_path, "annotation") if "annotation" in case else "",
            "unreadable image": _broken_copy(tiny_data, tmp_path, "image") if "image" in case else ""}.get(case) or tiny_data
    extra = {"unknown backbone": ["backbone=nope_net"], "tau out of range": ["tau=1.5"], "p out of range": ["p=-1"],
             "pca_dim too large": ["pca_dim=6"], "unknown key": ["learning_rate=0.1"]}.get(case, [])
    code, out, err = run(capsys, "train", "--set", "dataset=coco", f"data_dir={data}", *extra)
    assert code == 2 and out == ""
    lines = err.strip().splitlines()
    assert [line for line in lines if "error" in line] == lines[-1:] and "Traceback" not in err
    assert lines[-1].startswith("imlgcn: error: ") and fragment in lines[-1]
    assert not (tmp_path / "mlflow.db").exists()  # nothing half-written: no MLflow run for bad input
    import ray

    assert not ray.is_initialized()


def test_console_script_exit_code_and_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("imlgcn")
    done = subprocess.run([str(exe), "train", "--set", "tau=2"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "imlgcn: error: tau=2.0 is out of range: use a value in [0, 1]"
