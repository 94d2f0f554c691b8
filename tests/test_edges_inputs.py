"""More inputs of each kind issue 33 names (negative, zero and absurd numbers; missing, unreadable, wrong-kind and
out-of-folder paths; corrupt and empty files; unknown names; duplicates; names; the network): each is one
`imlgcn: error:` line naming the problem and the fix, exit 2, nothing written, no traceback. Rows marked
`# held` held before this table was written and stay as regression rows."""

from __future__ import annotations

import pytest

from tests.edge_inputs import (UNREADABLE, closed_port, coco_set, csv_set, missing_data, one_line, predict,
                               study_record, text, unreadable, yaml_config)

DOWN = f"http://127.0.0.1:{closed_port()}"
SYNTH = ["data", "synth", "--train-images", "2", "--val-images", "1", "--image-size", "8"]


def _synth(tmp, *changes: str) -> list[str]:
    return [*SYNTH, "--out", str(tmp / "synthetic"), *changes]


def _study(tmp, *options: str) -> list[str]:
    """`study run` in tmp/studies that would stop at its data (see missing_data) past the check under test."""
    return ["study", "run", "--storage", str(tmp / "studies"), *options, *missing_data(tmp)]


def _compare(tmp, *options: str) -> list[str]:
    return ["compare", "--storage", str(tmp / "studies"), *options, *missing_data(tmp)]


def _arms(tmp, content: str) -> list[str]:
    return _compare(tmp, "--name", "c", "--arms", str(text(tmp / "arms.yaml", content)))


CASES = {  # name -> (argv from tmp_path, the words the line must hold; {tmp} is tmp_path)
    # negative
    "training seed -1": (lambda tmp: ["train", "--set", "seed=-1", *missing_data(tmp)],
                         "seed=-1 is out of range: use an integer in 0..4294967295"),
    "synth seed -1": (lambda tmp: _synth(tmp, "--seed", "-1"), "synthetic data seed -1: use an integer in 0..4294967295"),
    "study max-concurrent -1": (lambda tmp: _study(tmp, "--name", "s", "--max-concurrent", "-1"),
                                "--max-concurrent -1: use 0 (as many as the CPUs allow) or more"),
    "compare max-concurrent -1": (lambda tmp: _compare(tmp, "--name", "c", "--max-concurrent", "-1"),
                                  "--max-concurrent -1: use 0 (as many as the CPUs allow) or more"),
    "compare seed -1": (lambda tmp: _compare(tmp, "--name", "c", "--seeds", "-1", "2"),
                        "--seeds -1 2: give distinct training seeds in 0..4294967295"),
    "params pca-dim -1": (lambda tmp: ["params", "--pca-dim", "-1"],
                          "--pca-dim -1: use at least 0 (0 = the number of classes)"),
    "study num-samples -1": (lambda tmp: _study(tmp, "--name", "s", "--num-samples", "-1"),  # held
                             "--num-samples -1: use at least 1"),
    "predict threshold -0.1": (lambda tmp: predict(tmp, str(tmp), "--threshold", "-0.1"),  # held
                               "--threshold -0.1 is out of range: use a probability in [0, 1]"),
    # zero
    "params num-classes 0": (lambda tmp: ["params", "--num-classes", "0"], "--num-classes 0: use at least 1"),
    "params image-size 0": (lambda tmp: ["params", "--image-size", "0"], "--image-size 0: use at least 1"),
    "params hidden 0": (lambda tmp: ["params", "--backbone", "test_resnet", "--num-classes", "5", "--embedding", "fpca",
                                     "--hidden", "0"], "--hidden 0: use at least 1"),
    "params word-dim 0": (lambda tmp: ["params", "--word-dim", "0"], "--word-dim 0: use at least 1"),
    "training epochs 0": (lambda tmp: ["train", "--set", "epochs=0"], "epochs=0 must be at least 1"),  # held
    # absurd sizes
    "synth image size 10 million": (lambda tmp: _synth(tmp, "--image-size", "10000000"),
                                    "synthetic image size 10000000: use at most 1,024"),
    "synth 10^12 images": (lambda tmp: _synth(tmp, "--train-images", "1000000000000"),
                           "synthetic train images 1000000000000: use at most 1,000,000"),
    "data seed 10^11": (lambda tmp: ["train", "--set", "data_seed=99999999999", *missing_data(tmp)],
                        "data_seed=99999999999 is out of range: use an integer in 0..4294967295"),
    "params image-size -5": (lambda tmp: ["params", "--image-size", "-5"], "--image-size -5: use at least 1"),
    # missing paths
    "config file missing": (lambda tmp: ["params", "--config", str(tmp / "my.yaml")],  # held
                            "config file {tmp}/my.yaml does not exist: pass an existing YAML file to --config"),
    "predict model missing": (lambda tmp: predict(tmp, str(tmp / "model")),  # held
                              "--model {tmp}/model: no such folder; pass a model folder"),
    "csv data folder missing": (lambda tmp: ["data", "stats", "--dataset", "csv", "--data-dir", str(tmp / "no")],  # held
                                "data folder {tmp}/no does not exist"),
    "csv image missing": (lambda tmp: csv_set(tmp, "image,labels\nimgs/c.png,cat\n"),  # held
                          "image {tmp}/csv/imgs/c.png is missing (1 of 1 images of train.csv missing)"),
    # unreadable files
    "config unreadable": (lambda tmp: ["params", "--config", UNREADABLE],
                          f"config file {UNREADABLE} cannot be read (Input/output error): make it readable"),
    "config not UTF-8": (lambda tmp: yaml_config(tmp, b"\xff\xfetau: 0.1\n"), "is not UTF-8 text: save it as UTF-8 YAML"),
    "csv unreadable": (lambda tmp: csv_set(tmp, "", unreadable_file="train.csv"),
                       "CSV file {tmp}/csv/train.csv cannot be read (Input/output error): make it readable"),
    "classes.txt unreadable": (lambda tmp: csv_set(tmp, "image,labels\nimgs/a.png,cat\n", unreadable_file="classes.txt"),
                               "class file {tmp}/csv/classes.txt cannot be read"),
    "coco annotations unreadable": (lambda tmp: coco_set(tmp, None), "instances_train2014.json cannot be read"),
    # wrong kind: a folder where a file belongs, a file where a folder belongs
    "data folder is a file": (lambda tmp: ["data", "stats", "--dataset", "csv", "--data-dir", str(text(tmp / "f", "x"))],
                              "data folder {tmp}/f is a file, not a folder: pass the data set's folder"),
    "csv image is a folder": (lambda tmp: csv_set(tmp, "image,labels\nimgs,cat\n"),
                              "image {tmp}/csv/imgs of train.csv is a folder, not an image file"),
    "predict model is a file": (lambda tmp: predict(tmp, str(text(tmp / "model.bin", "x"))),
                                "--model {tmp}/model.bin is a file, not a model folder: pass the folder that holds it"),
    "synth out is a file": (lambda tmp: _synth(tmp, "--out", str(text(tmp / "f", "x"))),
                            "synthetic data folder {tmp}/f is a file: choose a new or empty folder"),
    "study list of a file": (lambda tmp: ["study", "list", "--storage", str(text(tmp / "f", "x"))],
                             "--storage {tmp}/f is a file, not a folder: pass the folder that holds the studies"),
    "sqlite store is a folder": (lambda tmp: ["train", "--tracking-uri", f"sqlite:///{tmp}", *missing_data(tmp)],
                                 "names the folder {tmp}, not a SQLite file: name the file, e.g. "
                                 "sqlite:///{tmp}/mlflow.db"),
    "arms file is a folder": (lambda tmp: _compare(tmp, "--name", "c", "--arms",
                                                   str((tmp / "a.yaml").mkdir() or tmp / "a.yaml")),
                              "--arms {tmp}/a.yaml is a folder, not a YAML file: pass a YAML file to --arms"),
    "storage is a file": (lambda tmp: ["train", "--storage", str(text(tmp / "f", "x"))],  # held
                          "--storage {tmp}/f is not writable (not a directory)"),
    # out of the folder
    "study name ../x": (lambda tmp: _study(tmp, "--name", "../x"), "study name '../x' is not a plain folder name"),
    "study report of ..": (lambda tmp: ["study", "report", "..", "--storage", str(tmp)], "study name '..' is not a plain"),
    "csv split ../csv/train": (lambda tmp: csv_set(tmp, "image,labels\nimgs/a.png,cat\n") + ["--split", "../csv/train"],
                               "split '../csv/train' is not a plain name: --split NAME reads NAME.csv in {tmp}/csv"),
    "csv image path via ./../": (lambda tmp: csv_set(tmp, "image,labels\n./imgs/../../outside.png,cat\n"),
                                 "image path ./imgs/../../outside.png leaves the folder {tmp}/csv"),
    # corrupt and empty files
    "empty config": (lambda tmp: yaml_config(tmp, ""), "config file {tmp}/my.yaml is empty: write one key: value per line"),
    "config of comments only": (lambda tmp: yaml_config(tmp, "# tau: 0.3\n"), "config file {tmp}/my.yaml is empty"),
    "config holding a list": (lambda tmp: yaml_config(tmp, "- tau\n- p\n"), "holds a list, not a mapping: write one key"),
    "config of bad syntax": (lambda tmp: yaml_config(tmp, "tau: [0.3\n"), "is not valid YAML at line 2: fix the syntax"),  # held
    "empty arms file": (lambda tmp: _arms(tmp, ""), "arms file {tmp}/arms.yaml is empty: write `arm_name: {key: value, ...}`"),
    "empty csv": (lambda tmp: csv_set(tmp, ""), "train.csv is empty: write the header image,labels, then one row per image"),
    "csv header without rows": (lambda tmp: csv_set(tmp, "image,labels\n"), "train.csv has a header and no rows"),
    "empty classes.txt": (lambda tmp: csv_set(tmp, "image,labels\nimgs/a.png,cat\n", classes="\n"),
                          "class file {tmp}/csv/classes.txt is empty: write one class per line"),
    "coco annotations cut short": (lambda tmp: coco_set(tmp, '{"images": ['), "is not valid JSON (line 1)"),  # held
    "coco annotations a list": (lambda tmp: coco_set(tmp, "[]"), "is not COCO format"),  # held
    "coco annotations without categories": (lambda tmp: coco_set(tmp, '{"images": [], "annotations": [], '
                                                                      '"categories": []}'), "has no categories"),
    # unknown names
    "unknown dataset": (lambda tmp: ["train", "--set", "dataset=imagenet"], "dataset='imagenet' is not one of"),  # held
    "unknown backbone": (lambda tmp: ["params", "--set", "backbone=resnet_9000"], "is not a timm model"),  # held
    "unknown embedding": (lambda tmp: ["train", "--set", "embedding=glove"], "embedding='glove' is not one of"),  # held
    "unknown preset": (lambda tmp: ["params", "--preset", "paper"], "unknown preset 'paper': choose one of"),  # held
    "unknown synthetic class": (lambda tmp: _synth(tmp, "--classes", "unicorn"), "unicorn is not a COCO class name"),  # held
    "unknown arm set": (lambda tmp: _compare(tmp, "--name", "c", "--arms", "tabel3"), "is neither a built-in arm set"),  # held
    "unknown study": (lambda tmp: ["study", "report", "nope", "--storage", str(tmp)], "no study named 'nope'"),  # held
    # duplicates
    "arm given twice": (lambda tmp: _arms(tmp, "a: {tau: 0.1}\na: {tau: 0.2}\n"),
                        "arms file {tmp}/arms.yaml gives key 'a' twice (on lines 1 and 2): keep one"),
    "key twice on one line": (lambda tmp: yaml_config(tmp, "{tau: 0.1, tau: 0.2}\n"), "gives key 'tau' twice (on line 1)"),
    "csv image listed twice": (lambda tmp: csv_set(tmp, "image,labels\nimgs/a.png,cat\nimgs/b.png,\n./imgs/a.png,dog\n"),
                               "lists image ./imgs/a.png twice (lines 2 and 4): keep one row per image"),
    "class listed twice": (lambda tmp: csv_set(tmp, "image,labels\nimgs/a.png,cat\n", classes="cat\ndog\ncat\n"),
                           "classes.txt lists class 'cat' twice: keep one line per class"),
    "compare seed twice": (lambda tmp: _compare(tmp, "--name", "c", "--seeds", "0", "0"), "give distinct"),  # held
    "train tracking uri foo://": (lambda tmp: ["train", "--tracking-uri", "foo://bar", *missing_data(tmp)],
                                  "--tracking-uri foo://bar: MLflow has no tracking store for foo:// URIs"),
    "study run tracking uri s3://": (lambda tmp: _study(tmp, "--name", "s", "--tracking-uri", "s3://b/mlflow"),
                                     "MLflow has no tracking store for s3:// URIs"),
    "study run screen -5": (lambda tmp: _study(tmp, "--name", "s", "--screen", "-5"),
                            "--screen -5: use 0 (no screening) or more"),
    # storage that is not a folder: an object-store URI was read as a folder named `s3:`
    "train storage s3": (lambda tmp: ["train", "--storage", "s3://bucket/runs", *missing_data(tmp)],
                         "--storage s3://bucket/runs: object-store storage (s3://) is not supported yet"),
    "study run storage gs": (lambda tmp: [*_study(tmp, "--name", "s"), "--storage", "gs://b/studies"],
                             "--storage gs://b/studies: object-store storage (gs://) is not supported yet"),
    "study list storage s3": (lambda tmp: ["study", "list", "--storage", "s3://b/studies"],
                              "object-store storage (s3://) is not supported yet"),
    # names of studies and comparisons
    "study named stage1": (lambda tmp: _study(tmp, "--name", "stage1"), "study name 'stage1' is the storage's shared stage-1"),
    "study named .x": (lambda tmp: _study(tmp, "--name", ".x"), "study name '.x' is not a plain folder name"),
    "study with an empty name": (lambda tmp: _study(tmp, "--name", ""), "study name '' is not a plain folder name"),
    "comparison named a/b": (lambda tmp: _compare(tmp, "--name", "a/b"), "comparison name 'a/b' is not a plain folder"),
    # the network: a server that is down is one line in seconds for every command that talks to one
    "predict from gs with credentials": (lambda tmp: predict(tmp, "gs://ann:pw@bucket/m"),
                                         "--model gs://ann:***@bucket/m: predict does not fetch gs: URIs"),
    "train, server down": (lambda tmp: ["train", "--tracking-uri", DOWN], f"MLflow tracking server {DOWN} is unreachable"),  # held
    "compare, server down": (lambda tmp: _compare(tmp, "--name", "c", "--tracking-uri", DOWN), f"{DOWN} is unreachable"),  # held
    "study run, server down": (lambda tmp: _study(tmp, "--name", "s", "--tracking-uri", DOWN), f"{DOWN} is unreachable"),  # held
    "study resume, server down": (lambda tmp: ["study", "resume", "r", "--storage", study_record(tmp, DOWN)],  # held
                                  f"MLflow tracking server {DOWN} is unreachable"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_input_is_one_line_naming_problem_and_fix(case, tmp_path, capsys):
    argv, words = CASES[case]
    assert words.replace("{tmp}", str(tmp_path)) in one_line(argv, tmp_path, capsys)


def test_unreadable_stays_unreadable_for_root(tmp_path):
    """The rows above rely on a file that opens and then cannot be read, whoever runs the suite."""
    with pytest.raises(OSError), open(unreadable(tmp_path / "x"), "rb") as handle:
        handle.read(1)
