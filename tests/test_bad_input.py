"""Bad input at scale fails in seconds, with one line, before any trial starts and without leaving a study."""

import os
import shutil
import socket
import time
from pathlib import Path

import pytest

from study.command.cli import main


def run(capsys, *argv):
    began = time.time()
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, err.strip().splitlines(), time.time() - began


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


def _study(tmp_path, data, *extra):
    return ("study", "run", "--name", "bad", "--storage", str(tmp_path / "studies"), "--space", "small",
            "--set", "dataset=coco", f"data_dir={data}", "backbone=test_resnet", "image_size=32", *extra)


def _assert_nothing_left(tmp_path):
    assert not (tmp_path / "studies" / "bad").exists()  # the name is free for a corrected run
    import ray

    assert not ray.is_initialized()


@pytest.mark.parametrize("flag", ["--tracking-uri", "--address"])
def test_unreachable_tracking_server_or_ray_address(capsys, monkeypatch, tmp_path, tiny_data, flag):
    monkeypatch.chdir(tmp_path)
    value = f"http://127.0.0.1:{_closed_port()}" if flag == "--tracking-uri" else f"127.0.0.1:{_closed_port()}"
    extra = [flag, value] + (["--tracking-uri", f"sqlite:///{tmp_path}/mlflow.db"] if flag == "--address" else [])
    for command in (["train", "--set", "dataset=coco", f"data_dir={tiny_data}", *extra], [*_study(tmp_path, tiny_data), *extra]):
        code, lines, seconds = run(capsys, *command)
        assert code == 2 and seconds < 30 and lines[-1].startswith("imlgcn: error: ")
        assert ("MLflow tracking server" if flag == "--tracking-uri" else "Ray cluster at") in lines[-1]
        assert "unreachable" in lines[-1] and value in lines[-1]
    _assert_nothing_left(tmp_path)
    assert not (tmp_path / "mlflow.db").exists()


def test_storage_without_write_permission(capsys, monkeypatch, tmp_path, tiny_data):
    monkeypatch.chdir(tmp_path)
    if os.geteuid() == 0:  # root writes through file modes: use a read-only file system instead
        storage = Path("/sys/imlgcn-storage")
    else:
        storage = tmp_path / "locked"
        storage.mkdir(mode=0o500)
    for command in (["train", "--storage", str(storage / "runs")],
                    ["study", "run", "--name", "bad", "--storage", str(storage / "studies")]):
        code, lines, seconds = run(capsys, *command, "--set", "dataset=coco", f"data_dir={tiny_data}")
        assert code == 2 and seconds < 30 and "is not writable" in lines[-1] and str(storage) in lines[-1]
    assert not (tmp_path / "mlflow.db").exists()


def test_annotations_listing_missing_images(capsys, monkeypatch, tmp_path, tiny_data):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    gone = sorted((data / "train2014").iterdir())[:3]
    for image in gone:
        image.unlink()
    code, lines, seconds = run(capsys, *_study(tmp_path, data, "--tracking-uri", f"sqlite:///{tmp_path}/m.db"))
    assert code == 2 and seconds < 30 and f"image {gone[0]} is missing (3 of 48 images" in lines[-1]
    _assert_nothing_left(tmp_path)
    assert not (tmp_path / "m.db").exists()


def test_a_study_name_being_created_is_refused(capsys, monkeypatch, tmp_path, tiny_data):
    """Two drivers starting the same name: the folder is claimed atomically, the second is refused."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "studies" / "bad").mkdir(parents=True)  # as if another driver had just claimed it
    code, lines, _ = run(capsys, *_study(tmp_path, tiny_data))
    assert code == 2 and "study 'bad' already exists" in lines[-1] and "choose another --name" in lines[-1]
    assert (tmp_path / "studies" / "bad").is_dir()  # the other driver's folder is left alone


def test_resume_is_refused_while_another_driver_holds_the_study(capsys, tmp_path):
    import fcntl

    from study.driver.record import StudyRecord, driver_lock

    state = StudyRecord(name="busy", storage=str(tmp_path), base_config={}, space="small", objective="multi",
                       num_samples=1, max_concurrent=1, num_classes=5, tracking_uri="sqlite:///x.db",
                       experiment_id="1", parent_run_id="p")
    state.save()
    with driver_lock(state):
        code, lines, _ = run(capsys, "study", "resume", "busy", "--storage", str(tmp_path))
    assert code == 2 and "is being run by another driver (pid" in lines[-1]
    with open(state.folder / "driver.lock") as handle:  # released on exit: a later resume may take it
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)


def test_credentials_in_a_tracking_uri_are_not_printed():
    from study.driver.preflight import redact

    assert redact("http://alice:s3cret@mlflow.example:5000/x") == "http://alice:***@mlflow.example:5000/x"
    assert redact("sqlite:////tmp/mlflow.db") == "sqlite:////tmp/mlflow.db"
