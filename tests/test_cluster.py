"""A study on a real two-node Ray cluster with token authentication and a real MLflow tracking server,
with faults injected while it runs. Everything binds to loopback addresses; the test stops what it
started by process group.

One study, in order: a second `study run` of the same name and a `study resume` are refused while it
runs; the MLflow server is stopped for 30 s and started again; the driver is killed with SIGKILL and
`study resume` finishes it. Then every asked trial is FINISHED exactly once, nothing is left RUNNING,
one-worker trials ran in their own trial processes on whole CPUs, two at once, on both nodes, the
report works against the server, and the server's password-like URI part never shows up in output,
params or tags. Then a data-parallel study (one trial on two Ray Train workers, one per node) finishes
without deadlock.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from study.driver.loopback_cluster import free_port, start_cluster, stop_cluster, stop_groups, token_auth, wait_for

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
TRIALS = 4
SCREENED = 20


@pytest.fixture(scope="module")
def auth_env(tmp_path_factory) -> dict[str, str]:
    """Ray token authentication on: every node and driver gets the same random token file."""
    return {**os.environ, **token_auth(tmp_path_factory.mktemp("auth"))}


@pytest.fixture(scope="module")
def ray_cluster(auth_env, tmp_path_factory):
    """A head on 127.0.0.2 and a second node on 127.0.0.3, one CPU each; yields the head's address."""
    started = []
    try:
        yield start_cluster(2, 1, tmp_path_factory.mktemp("ray_logs"), auth_env, started, dashboard=True)
    finally:
        stop_cluster(started)


class MlflowServer:
    """`mlflow server` on 127.0.0.1 with a SQLite backend and a local artifact root; stop() and start()."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port, self.process = folder, free_port(), None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
        self.process = subprocess.Popen(
            [str(BIN / "mlflow"), "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
             "--backend-store-uri", f"sqlite:///{self.folder / 'mlflow.db'}",
             "--default-artifact-root", str(self.folder / "artifacts")],
            env=env, stdout=open(self.folder / "server.log", "a"), stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(self.healthy, 120, "the MLflow server")

    def healthy(self) -> bool:
        import requests

        try:
            return requests.get(self.uri + "/health", timeout=2).ok
        except requests.RequestException:
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_groups(self.process)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    server = MlflowServer(tmp_path_factory.mktemp("mlflow_server"))
    server.start()
    yield server
    server.stop()


def _trial_runs(uri: str, name: str, status: str | None = None, level: str | None = None) -> list:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return []
    query = "tags.stage = 'trial'" + (f" and tags.level = '{level}'" if level else "")
    found = client.search_runs([experiment.experiment_id], query, max_results=5000)
    return [r for r in found if status is None or r.info.status == status]


def test_study_on_two_nodes_survives_faults(tmp_path, tiny_data, ray_cluster, mlflow_server, auth_env):
    shared = tmp_path / "shared"  # both nodes see it: the study's storage
    secret = "pa55word-not-for-logs"
    uri = mlflow_server.uri.replace("http://", f"http://tester:{secret}@")
    common = ["--storage", str(shared), "--tracking-uri", uri, "--address", ray_cluster]
    tiny = ["--set", "dataset=coco", f"data_dir={tiny_data}", "backbone=test_resnet", "image_size=32",
            "pretrain_epochs=1", "epochs=8", "gcn_hidden=16", "batch_size=16", "finetune_backbone=false",
            "cpus_per_worker=1"]
    imlgcn = [str(BIN / "imlgcn"), "study"]
    log = open(tmp_path / "driver.log", "w")
    # early stopping off (--eta 0): every fine-tuning trial runs all its epochs (MOASHA stops a head-only trial
    # within a second, so the level could end between two polls and the kill below land on a finished study);
    # epochs=16: the second pair of trials is mid-way when the first pair has finished
    driver = subprocess.Popen([*imlgcn, "run", "--name", "c1", "--space", "small", "--screen", str(SCREENED),
                               "--num-samples", str(TRIALS), "--max-concurrent", "2", "--eta", "0", *common,
                               *[{"epochs=8": "epochs=16"}.get(item, item) for item in tiny]], cwd=tmp_path,
                              env=auth_env, stdout=log,
                              stderr=subprocess.STDOUT, start_new_session=True)
    outputs = []
    try:
        wait_for(lambda: (shared / "c1" / "study.json").exists(), 300, "the study record")
        for command in (["run", "--name", "c1", *common, *tiny], ["resume", "c1", *common]):
            refused = subprocess.run([*imlgcn, *command], cwd=tmp_path, env=auth_env, capture_output=True,
                                     text=True, timeout=120)
            outputs.append(refused.stderr)
            assert refused.returncode == 2, refused.stderr[-2000:]
        assert "already exists" in outputs[0] and "being run by another driver" in outputs[1]

        wait_for(lambda: len(_trial_runs(mlflow_server.uri, "c1", "FINISHED")) >= 1, 600, "a finished trial")
        mlflow_server.stop()  # the tracking server goes away for 30 s while trials log
        time.sleep(30)
        assert driver.poll() is None, "the study crashed while the MLflow server was down"
        mlflow_server.start()

        wait_for(lambda: len(_trial_runs(mlflow_server.uri, "c1", "FINISHED", "finetune")) >= 2, 600,
              "two finished fine-tuning trials")
        os.killpg(driver.pid, signal.SIGKILL)  # the driver dies during level 2; the cluster and the server stay up
        driver.wait(timeout=60)
        at_kill = len(_trial_runs(mlflow_server.uri, "c1", "FINISHED", "finetune"))
        assert at_kill < TRIALS, f"all {TRIALS} fine-tuning trials had finished before the kill: nothing to resume"
        resumed = subprocess.run([*imlgcn, "resume", "c1", *common], cwd=tmp_path, env=auth_env,
                                 capture_output=True, text=True, timeout=900)
        outputs.append(resumed.stderr + resumed.stdout)
        assert resumed.returncode == 0, resumed.stderr[-4000:]
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
        log.close()
    outputs.append((tmp_path / "driver.log").read_text())

    screened = _trial_runs(mlflow_server.uri, "c1", None, "screen")
    assert len({r.data.tags["trial_id"] for r in screened}) == len(screened) == SCREENED  # level 1, each once
    runs = _trial_runs(mlflow_server.uri, "c1", None, "finetune")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    trial_ids = [r.data.tags["trial_id"] for r in finished]
    assert len(trial_ids) == TRIALS and len(set(trial_ids)) == TRIALS  # every trial exactly once
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert len({r.data.tags["ray_node_id"] for r in finished}) == 2  # trials ran on both nodes
    for run in finished:
        assert run.data.metrics["mAP"] > 0 and "n_params" in run.data.metrics
        assert secret not in str(run.data.params) + str(run.data.tags)
    report = subprocess.run([*imlgcn, "report", "c1", "--storage", str(shared), "--tracking-uri", uri],
                            cwd=tmp_path, env=auth_env, capture_output=True, text=True, timeout=300)
    assert report.returncode == 0 and "mAP" in report.stdout, report.stderr[-2000:]
    assert (shared / "c1" / "report" / "pareto.html").stat().st_size > 0
    for text in outputs + [report.stderr, report.stdout]:
        assert secret not in text
    # one-worker fine-tuning trials train in their own trial processes, each holding a whole CPU, two at
    # once, one per node (above: both nodes' ids); then a data-parallel trial (below)
    assert any("up to 2 at once (each in its own trial process on 1 CPU)" in text for text in outputs)
    _data_parallel_trial(tmp_path, tiny, [str(BIN / "imlgcn"), "--verbose", "study"], common, auth_env, mlflow_server)


def _data_parallel_trial(tmp_path, tiny, imlgcn, common, auth_env, mlflow_server) -> None:
    """A data-parallel trial (num_workers=2) on the two 1-CPU nodes: its trial function holds no CPU (a
    sliver of a node would leave no whole CPU for a worker: the deadlock this guards against), and its
    two Ray Train workers take one node each."""
    done = subprocess.run([*imlgcn, "run", "--name", "dp", "--space", "small", "--screen", "0", "--num-samples", "1",
                           *common, *[{"epochs=8": "epochs=2", "finetune_backbone=false": "finetune_backbone=true"}.get(
                               item, item) for item in tiny], "num_workers=2"], cwd=tmp_path,
                          env=auth_env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    assert "1 fine-tuning trials, up to 1 at once (each on 2 Ray Train workers x 1 CPU)" in done.stderr
    finished = _trial_runs(mlflow_server.uri, "dp", "FINISHED")
    assert len(finished) == 1 and finished[0].data.metrics["mAP"] > 0
    starts = set(re.findall(r"\(RayTrainWorker pid=(\d+)[^)]*\) \[workers\] 2 Ray Train worker\(s\)", done.stderr))
    assert len(starts) == 2, done.stderr[-3000:]  # the references' worker group and the trial's, each started once


VERSION_NODE_IP = "127.0.0.4"


def test_a_node_with_another_version_of_a_locked_package_stops_the_study_in_seconds(tmp_path, tiny_data, auth_env):
    """A one-node cluster whose node sees PyYAML 5.1 (a dist-info earlier on its path than the installed
    one: what a node installed on another day looks like to Python's metadata) and a driver with the
    installed PyYAML: `study run --address` stops before any trial, with one line naming the node, the
    package and both versions, exit 2, and no study written."""
    from importlib.metadata import version

    fake = tmp_path / "other_site"
    (fake / "PyYAML-5.1.dist-info").mkdir(parents=True)
    (fake / "PyYAML-5.1.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nName: PyYAML\nVersion: 5.1\n")
    node_env = {**auth_env, "PYTHONPATH": os.pathsep.join(filter(None, [str(fake), auth_env.get("PYTHONPATH")]))}
    nodes = []
    try:
        address = start_cluster(1, 1, tmp_path, node_env, nodes, head_ip=VERSION_NODE_IP, driver_env=auth_env)
        started = time.time()
        done = subprocess.run([str(BIN / "imlgcn"), "study", "run", "--name", "v", "--screen", "2", "--num-samples", "1",
                               "--address", address, "--storage", str(tmp_path / "studies"),
                               "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--set", "dataset=coco",
                               f"data_dir={tiny_data}", "backbone=test_resnet", "image_size=32"],
                              cwd=tmp_path, env=auth_env, capture_output=True, text=True, timeout=300)
        took = time.time() - started
    finally:
        stop_cluster(nodes)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-3000:]
    assert lines[-1].startswith(f"imlgcn: error: Ray node {VERSION_NODE_IP} ("), lines[-1]
    assert f"pyyaml 5.1 on the node, {version('pyyaml')} on the driver" in lines[-1], lines[-1]
    assert "requirements-lock.txt" in lines[-1] and "Traceback" not in done.stderr
    assert not (tmp_path / "studies" / "v").exists()  # nothing half-written: the name is free
    print(f"stopped {took:.1f} s after start: {lines[-1]}")
    assert took < 90, f"the version check took {took:.0f} s"
