"""Inputs a user can type that used to end in a traceback, pass silently or blame the wrong thing: each is one
line, exit 2, nothing written (issue 33's edges; more of each kind in tests/test_edges_inputs.py, the config
keys' own checks in tests/test_config.py)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest

from study.command.cli import main
from tests.edge_inputs import closed_port, csv_set, one_line, predict, study_record, yaml_config

SYNTH = ["data", "synth", "--train-images", "4", "--val-images", "2", "--image-size", "16"]


def _synth(out: Path, *changes: str) -> list[str]:
    """`imlgcn data synth` into `out`, with options changed (a later option wins in argparse)."""
    return [*SYNTH, "--out", str(out), *changes]


def _broken_study(storage: Path, text: str) -> Path:
    folder = storage / "broken"
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(text)
    return folder


URI_DOWN = f"http://127.0.0.1:{closed_port()}"
CASES = {  # name -> (argv from tmp_path, the words the one line must hold; {tmp} is tmp_path)
    "synth image size 0": (lambda tmp: _synth(tmp / "out", "--image-size", "0"), "synthetic image size 0: use at least 2"),
    "synth image size 1": (lambda tmp: _synth(tmp / "out", "--image-size", "1"), "synthetic image size 1: use at least 2"),
    "synth no training image": (lambda tmp: _synth(tmp / "out", "--train-images", "0"),
                                "synthetic train images 0: use at least 1"),
    "synth negative validation": (lambda tmp: _synth(tmp / "out", "--val-images", "-1"),
                                  "synthetic validation images -1: use at least 1"),
    "synth into /proc": (lambda tmp: _synth(Path("/proc/imlgcn-nope/out")), "cannot write the synthetic data set to"),
    "predict device tpu": (lambda tmp: ["predict", "--model", str(tmp / "model"), "--device", "tpu", str(tmp / "x.png")],
                           "--device tpu is not a torch device: use cpu, cuda or cuda:N"),
    "predict batch size 0": (lambda tmp: ["predict", "--model", str(tmp / "model"), "--batch-size", "0",
                                          str(tmp / "x.png")], "--batch-size 0: use at least 1"),
    # the second table: silent acceptance, misleading lines, paths leaving a CSV set's folder
    "csv row with a third column": (lambda tmp: csv_set(tmp, "image,labels\nimgs/a.png,cat,dog\n"),
                                    "train.csv line 2 has 3 fields, the header 2: write image,labels"),
    "csv row without its labels field": (lambda tmp: csv_set(tmp, "image,labels\nimgs/b.png,dog\nimgs/a.png\n"),
                                         "train.csv line 3 has no labels field: write image,labels"),
    "csv absolute image path": (lambda tmp: csv_set(tmp, f"image,labels\n{tmp / 'outside.png'},cat\n"),
                                f"train.csv line 2: image path {{tmp}}/outside.png is absolute: write it relative to"),
    "csv image path leaving the folder": (lambda tmp: csv_set(tmp, "image,labels\nimgs/../../outside.png,cat\n"),
                                          "line 2: image path imgs/../../outside.png leaves the folder {tmp}/csv: "
                                          "write it relative to {tmp}/csv"),
    "yaml giving tau twice": (lambda tmp: yaml_config(tmp, "tau: 0.1\np: 0.2\ntau: 0.3\n"),
                              "config file {tmp}/my.yaml gives key 'tau' twice (on lines 1 and 3): keep one"),
    "params pca-dim above the classes": (lambda tmp: ["params", "--num-classes", "5", "--pca-dim", "80"],
                                         "--pca-dim 80 exceeds the 5 classes (--num-classes): use --pca-dim <= 5"),
    "params negative num-classes": (lambda tmp: ["params", "--num-classes", "-3"], "--num-classes -3: use at least 1"),
    "config is a folder": (lambda tmp: ["train", "--config", str(tmp)],
                           "--config {tmp} is a folder, not a YAML file: pass a YAML file to --config"),
    "predict a folder of images": (lambda tmp: ["predict", "--model", str(tmp), str(tmp)],
                                   "IMAGE {tmp} is a folder, not an image: pass the images in it (e.g. {tmp}/*.jpg)"),
    "predict from s3": (lambda tmp: predict(tmp, "s3://bucket/x"), "--model s3://bucket/x: predict does not fetch "
                        "s3: URIs (object stores and the like) yet: download the model folder and pass its path"),
    "predict from a server that is down": (lambda tmp: predict(tmp, "models:/m/1", "--tracking-uri", URI_DOWN),
                                           f"MLflow tracking server {URI_DOWN} is unreachable (ConnectionError): start it"),
    "study report, server down": (lambda tmp: ["study", "report", "r", "--storage", study_record(tmp, URI_DOWN)],
                                  f"MLflow tracking server {URI_DOWN} is unreachable"),
    "study export, server down": (lambda tmp: ["study", "export", "r", "--front", "--storage",
                                               study_record(tmp, URI_DOWN)], f"MLflow tracking server {URI_DOWN} is"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_input_is_one_line_with_exit_2_and_nothing_written(case, tmp_path, capsys):
    argv, words = CASES[case]
    began = time.monotonic()
    line = one_line(argv, tmp_path, capsys)
    assert words.replace("{tmp}", str(tmp_path)) in line and time.monotonic() - began < 60


@pytest.mark.parametrize("record", ["{not json", "[1, 2]", ""])
@pytest.mark.parametrize("command", [["study", "list"], ["study", "report", "broken"], ["study", "resume", "broken"]])
def test_an_unreadable_study_record_is_one_line_naming_the_file(record, command, tmp_path, capsys):
    folder = _broken_study(tmp_path / "studies", record)
    code = main([*command, "--storage", str(tmp_path / "studies")])
    out, err = capsys.readouterr()
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"imlgcn: error: the study record {folder / 'study.json'} cannot be read")
    assert f"remove the folder {folder} to start study 'broken' again" in line
    assert (folder / "study.json").read_text() == record  # left as it was


def test_a_backbone_typed_beside_a_preset_overrides_it_and_the_papers_count_is_left_out(capsys):
    """Options typed on the command line win over the file they start from (as --set does); the paper's
    31.5 M is paper-coco's own model, so beside ResNet-50 it is not printed, and a note says why."""
    assert main(["params", "--preset", "paper-coco", "--backbone", "resnet50"]) == 0
    out, err = capsys.readouterr()
    counted = json.loads(out)
    assert counted["backbone"] == 23_508_032 and counted["total"] == 25_687_104 and "paper_table1_M" not in counted
    assert "note: the paper's count for paper-coco (31.5 M) is of its own model (backbone=tresnet_m" in err
    assert main(["params", "--preset", "paper-coco", "--set", "backbone=resnet50"]) == 0
    assert "paper_table1_M" not in json.loads(capsys.readouterr().out)
    assert main(["params", "--preset", "paper-coco", "--backbone", "tresnet_m"]) == 0  # its own: printed
    assert json.loads(capsys.readouterr().out)["paper_table1_M"] == 31.5
    # --hidden too (it was ignored beside a preset): the GCN head is W1 (k x hidden) + W2 (hidden x D), with
    # paper-coco's k = 80 (fpca, pca_dim = C) and D = 2048 (TResNet-M's pooled width): hidden x 2128
    for hidden in (512, 1024):
        assert main(["params", "--preset", "paper-coco", "--hidden", str(hidden)]) == 0
        head = json.loads(capsys.readouterr().out)["head"]
        assert head == hidden * (80 + 2048), (hidden, head)
    assert main(["params", "--preset", "paper-coco", "--set", "gcn_hidden=64", "--hidden", "256"]) == 0  # typed wins
    assert json.loads(capsys.readouterr().out)["head"] == 256 * (80 + 2048)


@pytest.fixture()
def silent_server():
    """A port that accepts connections and never answers (a hung server, or a firewall that drops replies)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"


def test_a_server_that_never_answers_fails_at_the_deadline_which_is_configurable(silent_server, tmp_path, capsys,
                                                                                 monkeypatch):
    monkeypatch.setenv("IMLGCN_NETWORK_TIMEOUT", "1")
    for argv in (predict(tmp_path, "models:/m/1", "--tracking-uri", silent_server),
                 ["study", "report", "r", "--storage", study_record(tmp_path, silent_server)]):
        began = time.monotonic()
        line = one_line(lambda tmp: argv, tmp_path, capsys)
        assert time.monotonic() - began < 8, line  # MLflow's client alone retries for minutes
        assert f"MLflow tracking server {silent_server} is unreachable (ReadTimeout within 1 s " \
               "(IMLGCN_NETWORK_TIMEOUT sets the deadline)): start it" in line


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "99999"])
def test_a_deadline_that_is_not_one_is_named(value, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("IMLGCN_NETWORK_TIMEOUT", value)
    line = one_line(lambda tmp: predict(tmp, "models:/m/1", "--tracking-uri", URI_DOWN), tmp_path, capsys)
    assert f"IMLGCN_NETWORK_TIMEOUT={value!r} is not a deadline: set it to seconds in (0, 3600]" in line


def test_credentials_in_a_tracking_uri_are_not_printed(tmp_path, capsys):
    secret = URI_DOWN.replace("http://", "http://ann:s3cret@")
    line = one_line(lambda tmp: predict(tmp, "models:/m/1", "--tracking-uri", secret), tmp_path, capsys)
    assert "s3cret" not in line and "http://ann:***@127.0.0.1:" in line
