"""Inputs a user can type that used to end in a traceback or pass silently: each is one line, exit 2, nothing
written. (A first table of issue 33's edges; the config keys' own checks are in tests/test_config.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from study.command.cli import main

SYNTH = ["data", "synth", "--train-images", "4", "--val-images", "2", "--image-size", "16"]


def _synth(out: Path, *changes: str) -> list[str]:
    """`imlgcn data synth` into `out`, with options changed (a later option wins in argparse)."""
    return [*SYNTH, "--out", str(out), *changes]


def _broken_study(storage: Path, text: str) -> Path:
    folder = storage / "broken"
    folder.mkdir(parents=True)
    (folder / "study.json").write_text(text)
    return folder


CASES = {  # name -> (argv from tmp_path, the words the one line must hold)
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
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_bad_input_is_one_line_with_exit_2_and_nothing_written(case, tmp_path, capsys):
    argv, words = CASES[case]
    before = sorted(tmp_path.rglob("*"))
    code = main(argv(tmp_path))
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and "Traceback" not in err
    assert lines[-1].startswith("imlgcn: error: ") and words in lines[-1], lines
    assert sorted(tmp_path.rglob("*")) == before  # nothing half-written


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
