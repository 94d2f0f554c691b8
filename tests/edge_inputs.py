"""Builders of the bad inputs of tests/test_edges*.py (files a user might hand the CLI) and the one check
they all get: one `imlgcn: error:` line with its words, exit 2, nothing on stdout, no traceback, nothing written."""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path
from typing import Callable

from PIL import Image

from study.command.cli import main

UNREADABLE = "/proc/self/mem"  # opens, then every read fails (EIO): unreadable even for root, which CI may be


def closed_port() -> int:
    """A local port nothing listens on (a tracking server that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def png(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8)).save(path)
    return path


def text(path: Path, content: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)
    return path


def unreadable(path: Path) -> Path:
    """A link to a file that opens but cannot be read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.symlink_to(UNREADABLE)
    return path


def csv_set(tmp: Path, train: str, *, classes: str | None = None, unreadable_file: str = "") -> list[str]:
    """`data stats` of a CSV set in tmp/csv whose train.csv holds `train` (images imgs/a.png, imgs/b.png)."""
    root = tmp / "csv"
    png(root / "imgs" / "a.png"), png(root / "imgs" / "b.png"), png(tmp / "outside.png")
    text(root / "val.csv", "image,labels\nimgs/b.png,cat\n")
    if unreadable_file:
        unreadable(root / unreadable_file)
    if unreadable_file != "train.csv":
        text(root / "train.csv", train)
    if classes is not None:
        text(root / "classes.txt", classes)
    return ["data", "stats", "--dataset", "csv", "--data-dir", str(root)]


def coco_set(tmp: Path, annotations: str | None) -> list[str]:
    """`data stats` of a COCO set whose training annotation file holds `annotations` (None: unreadable)."""
    path = tmp / "coco" / "annotations" / "instances_train2014.json"
    unreadable(path) if annotations is None else text(path, annotations)
    return ["data", "stats", "--dataset", "coco", "--data-dir", str(tmp / "coco")]


def yaml_config(tmp: Path, content: str | bytes, *command: str) -> list[str]:
    """`params` (or `command`) with --config a file holding `content`."""
    return [*(command or ("params",)), "--config", str(text(tmp / "my.yaml", content))]


def predict(tmp: Path, model: str, *options: str) -> list[str]:
    """`predict` of one real image with --model `model`."""
    return ["predict", "--model", model, *options, str(png(tmp / "photo.png"))]


def study_record(tmp: Path, tracking_uri: str) -> str:
    """A study 'r' in tmp/studies whose MLflow store is `tracking_uri`, with the lock file every study that ran
    has (resume takes the lock before its checks); returns the storage folder."""
    from study.driver.record import StudyRecord

    record = StudyRecord(name="r", storage=str(tmp / "studies"), base_config={}, space="paper", objective="multi",
                         num_samples=1, max_concurrent=0, num_classes=5, tracking_uri=tracking_uri,
                         experiment_id="1", parent_run_id="0")
    record.save()
    (record.folder / "driver.lock").touch()
    return str(tmp / "studies")


def missing_data(tmp: Path) -> list[str]:
    """--set pairs that stop a command at its data, if it got that far: a row that must fail on an earlier
    check fails (with other words) on code without that check, and never starts Ray."""
    return ["--set", "dataset=coco", f"data_dir={tmp / 'no-data'}"]


def one_line(argv: Callable[[Path], list[str]], tmp_path: Path, capsys) -> str:
    """Run the command built in tmp_path, from there (a default ./mlflow.db or ./imlgcn_runs would land in it);
    check the promise; return its error line."""
    args = argv(tmp_path)  # inputs written first: what the command writes is compared below
    before = sorted(tmp_path.rglob("*"))
    with contextlib.chdir(tmp_path):
        code = main(args)
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and "Traceback" not in err, (code, out, err)
    assert [line for line in lines if "error" in line] == lines[-1:] and lines[-1].startswith("imlgcn: error: "), lines
    assert sorted(tmp_path.rglob("*")) == before  # nothing half-written
    return lines[-1]
