"""`--dry-run` of train, study run and compare: the merged config with each value's source (preset < YAML
file < --set), the options, the plan, the data set's size and the model's counts; nothing written, no Ray."""

import os
import re
import subprocess
import sys

import pytest

from study.command.cli import main
from trainables.models.model import count_parameters

# The command in a fresh interpreter that says, after it, whether anything imported Ray
NO_RAY = ("import sys; from study.command.cli import main; code = main(sys.argv[1:]); "
          "print('ray imported:', 'ray' in sys.modules, file=sys.stderr); sys.exit(code)")


def _config_lines(out: str) -> dict[str, tuple[str, str]]:
    """key -> (value, source) of the dry run's `  key = value  (source)` lines."""
    found = re.findall(r"^  (\S+) = (.+?)\s+\((.+)\)$", out, re.MULTILINE)
    return {key: (value, source) for key, value, source in found}


def _written(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_study_run_dry_run_shows_each_source_and_writes_nothing(tmp_path):
    """A preset, a YAML file on top of it and --set on top of both: each value names the layer it came from;
    the searched keys, trials, data and model follow; no file appears and Ray is never imported."""
    mine = tmp_path / "mine.yaml"
    mine.write_text("tau: 0.3\np: 0.3\nepochs: 2\n")
    env = {**os.environ, "IMLGCN_CACHE": str(tmp_path / "cache")}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run([sys.executable, "-c", NO_RAY, "study", "run", "--name", "s", "--preset", "demo",
                           "--config", str(mine), "--set", "epochs=1", "p=0.4", "--stor", "st", "--dry-run"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = _config_lines(done.stdout)
    assert lines["backbone"] == ("'test_resnet'", "preset demo")  # the preset's, not overridden
    assert lines["tau"] == ("0.3", f"file {mine}")  # the file's, over the preset's 0.1
    assert lines["p"] == ("0.4", "--set") and lines["epochs"] == ("1", "--set")  # --set, over the file
    assert lines["gcn_hidden"] == ("1024", "default")
    assert lines["--storage"] == (str(tmp_path / "st"), "option --storage")  # abbreviated, still named
    assert lines["--screen"] == ("500", "default")
    assert "  screening: embedding, tau, p, pca_dim, gcn_lr" in done.stdout
    assert "500 head configurations" in done.stdout and "the 8 best screened" in done.stdout
    assert "27 classes, train 2,000 images, val 1,000 images" in done.stdout
    total = count_parameters("test_resnet", 27, "fpca", in_dim=27, hidden=1024)["total"]
    assert f"{total:,} parameters" in done.stdout
    assert "ray imported: False" in done.stderr
    assert _written(tmp_path) == ["mine.yaml"]  # no mlflow.db, no storage, no synthetic set


def test_train_dry_run_reads_the_data_and_starts_no_ray(capsys, tmp_path, monkeypatch, tiny_data):
    """A real data set's size comes from its annotation files; the command's default preset is named."""
    import ray

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMLGCN_CACHE", str(tmp_path / "cache"))
    code = main(["train", "--set", "dataset=coco", f"data_dir={tiny_data}", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and not ray.is_initialized()
    assert f"data: coco, {tiny_data}: 5 classes, train 48 images, val 24 images" in out
    assert _config_lines(out)["dataset"] == ("'coco'", "--set")
    assert "the direct model (same-budget baseline), then IML-GCN (fpca node features)" in out
    assert _written(tmp_path) == []


def test_compare_dry_run_lists_arms_and_runs(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMLGCN_CACHE", str(tmp_path / "cache"))
    code = main(["compare", "--name", "c", "--arms", "paper", "--seeds", "0", "1", "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0
    lines = _config_lines(out)
    assert lines["backbone"] == ("'test_resnet'", "preset demo (the command's default)")
    assert lines["--seeds"] == ("[0, 1]", "option --seeds") and lines["--arms"] == ("paper", "option --arms")
    assert "4 arms x 2 training seeds (0, 1) = 8 runs" in out
    direct = count_parameters("test_resnet", 27, "none")["total"]
    assert f"arm direct: {direct:,} parameters" in out
    assert _written(tmp_path) == []


@pytest.mark.parametrize("argv, fragment", [
    (["study", "run", "--name", "s", "--num-samples", "0"], "--num-samples 0: use at least 1"),
    (["train", "--set", "pca_dim=40"], "pca_dim=40 exceeds the 27 classes"),
    (["compare", "--name", "c", "--seeds", "1", "1"], "give distinct training seeds"),
    (["train", "--set", "dataset=coco", "data_dir=missing"], "does not exist"),
    (["study", "run", "--name", "s", "--max-concurrent", "-1"], "--max-concurrent -1: use 0"),
    (["compare", "--name", "c", "--max-concurrent", "-1"], "--max-concurrent -1: use 0"),
    (["compare", "--name", "a/b"], "comparison name 'a/b' is not a plain folder"),
])
def test_dry_run_stops_where_the_command_would(capsys, tmp_path, monkeypatch, argv, fragment):
    """Bad input is the command's own one line and exit 2, and still nothing is written."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMLGCN_CACHE", str(tmp_path / "cache"))
    assert main([*argv, "--dry-run"]) == 2
    captured = capsys.readouterr()
    assert fragment in captured.err and captured.err.count("\n") == 1 and not captured.out
    assert _written(tmp_path) == []


def test_dry_run_refuses_a_taken_name(capsys, tmp_path, monkeypatch):
    """A study or comparison folder that exists: the command would refuse the name, so the dry run does."""
    monkeypatch.setenv("IMLGCN_CACHE", str(tmp_path / "cache"))
    storage = tmp_path / "st"
    (storage / "taken").mkdir(parents=True)
    assert main(["compare", "--name", "taken", "--storage", str(storage), "--dry-run"]) == 2
    assert "comparison 'taken' already exists" in capsys.readouterr().err
    assert main(["study", "run", "--name", "taken", "--storage", str(storage), "--dry-run"]) == 2
    assert "study 'taken' already exists" in capsys.readouterr().err
    assert _written(tmp_path) == ["st", "st/taken"]
