"""The `imlgcn` command: results on stdout, bad input as one line on stderr before Ray or MLflow start."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from study.command.cli import main

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
    assert code == 0 and set(json.loads(out)) == {"total", "backbone", "head", "inference", "image_size", "gflops"}


GFLOPS = {  # the folded model's GFLOPs per image at the preset's 448 px (2 per multiply-add), and Table 1's count
    "paper-coco": (45.871, 31.5), "mlgcn-coco": (62.395, 44.9), "asl-coco": (45.871, 29.5)}


@pytest.mark.parametrize("preset", sorted(GFLOPS))
def test_params_prints_gflops_and_the_papers_count(capsys, preset):
    """TResNet-M: 5.7 GMACs at 224 px, x4 at 448; ResNet-101: 7.8 GMACs at 224 px (the backbones' papers)."""
    code, out, _ = run(capsys, "params", "--preset", preset)
    counts = json.loads(out)
    assert code == 0 and counts["image_size"] == 448
    assert (counts["gflops"], counts["paper_table1_M"]) == GFLOPS[preset]
    assert round(counts["total"] / 1e6, 1) == counts["paper_table1_M"]


def test_data_synth_and_stats(capsys, tmp_path):
    code, out, _ = run(capsys, "data", "synth", "--out", str(tmp_path / "s"), "--classes", "person,car,cup,tv",
                       "--train-images", "20", "--val-images", "10", "--image-size", "32")
    assert code == 0 and json.loads(out)["classes"] == "person,car,cup,tv"
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


def test_unreachable_weights_hub_is_one_line_before_ray(tmp_path, tiny_data):
    exe = Path(sys.executable).with_name("imlgcn")
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}  # empty cache
    done = subprocess.run([str(exe), "train", "--set", "dataset=coco", f"data_dir={tiny_data}", "pretrained=true"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("imlgcn: error: cannot fetch timm's pretrained weights "
                                                           "of test_resnet")
    assert "pretrained_path=FILE" in done.stderr and not (tmp_path / "mlflow.db").exists()


def test_console_script_exit_code_and_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("imlgcn")
    done = subprocess.run([str(exe), "train", "--set", "tau=2"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip() == "imlgcn: error: tau=2.0 is out of range: use a value in [0, 1]"


PRESET_PARAMS = {  # paper Table 1 rows, reached through the shipped presets
    "paper-coco": 31_519_104, "paper-vg500": 29_340_032 + 500 * 1024 + 1024 * 2048,
    "mlgcn-coco": 44_904_512, "asl-coco": 29_503_952, "demo": 372_688 + 27 * 1024 + 1024 * 96,  # 27 classes, k = 27
}


@pytest.mark.parametrize("preset, total", PRESET_PARAMS.items())
def test_params_of_each_preset(capsys, preset, total):
    code, out, _ = run(capsys, "params", "--preset", preset)
    assert code == 0 and json.loads(out)["total"] == total


def test_presets_load_with_overrides():
    from study.driver.config import load_trial_config

    coco = load_trial_config("paper-coco", None, ["data_dir=/data/coco", "backbone=resnet18"])
    assert (coco.backbone, coco.image_size, coco.pca_dim, coco.tau, coco.loss) == ("resnet18", 448, 80, 0.1, "asl")
    assert (coco.epochs, coco.gcn_lr, coco.weight_decay, coco.milestones()) == (40, 1e-3, 5e-4, [10, 20, 30])
    assert coco.augment.startswith("rand-") and coco.lr_schedule == "step"
    mlgcn = load_trial_config("mlgcn-coco", None, [])
    assert (mlgcn.backbone, mlgcn.embedding, mlgcn.tau, mlgcn.p) == ("resnet101", "word", 0.4, 0.2)
    assert load_trial_config("asl-coco", None, []).embedding == "none"
    assert load_trial_config("paper-vg500", None, []).dataset == "vg500"


def test_preset_and_config_together_merge_preset_then_file_then_set(capsys, tmp_path):
    """--preset with --config (once refused by argparse): the file on top of the preset, --set on top of both."""
    from trainables.models.model import count_parameters

    path = tmp_path / "mine.yaml"
    path.write_text("image_size: 224\ngcn_hidden: 512\n")
    code, out, err = run(capsys, "params", "--preset", "paper-coco", "--config", str(path), "--set", "gcn_hidden=256")
    counts = json.loads(out)
    assert code == 0 and counts["image_size"] == 224, err  # the file's, over the preset's 448
    expected = count_parameters("tresnet_m", 80, "fpca", in_dim=80, hidden=256)  # the preset's model, --set's width
    assert (counts["backbone"], counts["head"]) == (expected["backbone"], expected["head"])


def test_data_stats_of_each_reader(capsys, tmp_path):
    from tests.test_readers import VOC_CLASSES, _csv, _voc, _vg

    code, out, _ = run(capsys, "data", "stats", "--dataset", "voc", "--data-dir", str(_voc(tmp_path / "voc")))
    voc = json.loads(out)  # default split: trainval; all 20 classes listed, zeros included
    assert code == 0 and voc["classes"] == list(VOC_CLASSES) and voc["num_images"] == 4
    assert voc["image_counts"][VOC_CLASSES.index("dog")] == 1 and voc["image_counts"][VOC_CLASSES.index("person")] == 0
    code, out, _ = run(capsys, "data", "stats", "--dataset", "vg500", "--data-dir", str(_vg(tmp_path / "vg")),
                       "--split", "test")
    vg = json.loads(out)
    assert code == 0 and len(vg["classes"]) == 500 and vg["num_images"] == 1 and vg["image_counts"][7] == 1
    code, out, _ = run(capsys, "data", "stats", "--dataset", "csv", "--data-dir", str(_csv(tmp_path / "csv")))
    own = json.loads(out)
    assert code == 0 and own["classes"] == ["bird", "cat", "dog", "zebra"] and own["image_counts"] == [1, 2, 2, 0]
    code, _, err = run(capsys, "data", "stats", "--dataset", "voc", "--data-dir", str(tmp_path / "voc"),
                       "--split", "train")
    assert code == 2 and "ImageSets/Main/train.txt is missing" in err


def test_bad_weights_file_fails_before_ray_and_mlflow(capsys, monkeypatch, tmp_path, tiny_data):
    import torch
    from safetensors.torch import save_file

    from trainables.backbones import create_backbone

    monkeypatch.chdir(tmp_path)
    save_file(create_backbone("resnet18").state_dict(), str(tmp_path / "resnet18.safetensors"))
    for path, fragment in ((tmp_path / "missing.safetensors", "does not exist"),
                           (tmp_path / "resnet18.safetensors", "do not fit")):
        code, _, err = run(capsys, "train", "--set", "dataset=coco", f"data_dir={tiny_data}", f"pretrained_path={path}")
        assert code == 2 and fragment in err and len(err.strip().splitlines()) <= 2, err
        assert "pass a weights file saved from timm's test_resnet" in err
    torch.save({"weights": torch.zeros(1), "code": print}, tmp_path / "pickled.pt")  # not weights_only-safe
    code, _, err = run(capsys, "train", "--set", "dataset=coco", f"data_dir={tiny_data}",
                       f"pretrained_path={tmp_path / 'pickled.pt'}")
    assert code == 2 and "cannot read weights" in err
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow
def test_gpu_preset_on_a_machine_without_gpu_says_so(capsys, monkeypatch, tmp_path, tiny_data):
    """paper-coco asks for GPUs: on a CPU-only Ray it fails at once (not a trial waiting forever), no run."""
    import ray

    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "train", "--preset", "paper-coco", "--set", f"data_dir={tiny_data}",
                         "backbone=test_resnet", "pretrained=false", "image_size=32", "pca_dim=0")
    assert code == 2 and out == "" and "use_gpu=true but the Ray cluster has no GPU" in err.strip().splitlines()[-1]
    assert not ray.is_initialized()
    assert not (tmp_path / "mlflow.db").exists()
    code, _, err = run(capsys, "study", "run", "--name", "g", "--storage", str(tmp_path / "studies"),
                       "--preset", "paper-coco", "--set", f"data_dir={tiny_data}", "backbone=test_resnet",
                       "pretrained=false", "image_size=32", "pca_dim=0")
    assert code == 2 and "use_gpu=true but the Ray cluster has no GPU" in err
    assert not (tmp_path / "studies" / "g").exists() and not (tmp_path / "mlflow.db").exists()
    assert not ray.is_initialized()


def test_config_keys_are_listed_and_a_misspelt_key_gets_its_close_match(capsys):
    from dataclasses import fields

    from trainables.config import TrialConfig

    code, out, _ = run(capsys, "config")
    assert code == 0 and all(f"  {f.name} = " in out for f in fields(TrialConfig))
    assert "tau = 0.1 (float; head,search)  Eq. 3 threshold on P(j | i)" in out  # default and meaning, from the source
    code, _, err = run(capsys, "train", "--set", "pca_dims=3")
    assert code == 2 and "unknown config key 'pca_dims': did you mean pca_dim?" in err and "imlgcn config" in err


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["study", "run", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # help text wraps anywhere
    assert "(default: 8)" in out and "(default: 500)" in out and "(default: imlgcn_studies)" in out


def test_study_list_has_a_header_and_says_when_it_is_empty(capsys, tmp_path):
    code, out, _ = run(capsys, "study", "list", "--storage", str(tmp_path / "none"))
    assert code == 0 and out.startswith("no studies in ") and "imlgcn study run" in out


def test_predict_does_not_create_a_store_and_names_a_non_image(capsys, monkeypatch, tmp_path, tiny_data):
    monkeypatch.chdir(tmp_path)
    image = next((Path(tiny_data) / "val2014").iterdir())
    code, _, err = run(capsys, "predict", "--model", "models:/missing/1", str(image))
    assert code == 2 and "there is no MLflow store at" in err and not (tmp_path / "mlflow.db").exists()
    (tmp_path / "notes.txt").write_text("not an image")
    code, _, err = run(capsys, "predict", "--model", "models:/missing/1", str(tmp_path / "notes.txt"))
    assert code == 2 and "notes.txt is not an image this tool can read" in err and "annotations" not in err


def test_a_failed_command_leaves_no_empty_folders(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, _, _ = run(capsys, "train", "--set", "dataset=coco", f"data_dir={tmp_path / 'nowhere'}")
    assert code == 2
    code, _, _ = run(capsys, "study", "run", "--name", "x", "--set", "dataset=coco", f"data_dir={tmp_path / 'nowhere'}")
    assert code == 2 and sorted(p.name for p in tmp_path.iterdir()) == []  # no imlgcn_runs/, imlgcn_studies/
