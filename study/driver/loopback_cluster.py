"""A multi-node Ray cluster on one machine: `ray start` nodes on the loopback addresses 127.0.0.2, 127.0.0.3,
... with token authentication, `cpus` logical CPUs each. A study joins it with `--address` as it would a
real cluster (see README "Run on a cluster"), with more concurrent trials than the machine has cores:
tests/test_cluster.py and bench/sweep_scale.py start theirs here.

Each process runs in its own process group (`ray start --block` stops its node on SIGTERM), so
`stop_groups` ends it with everything it started.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

BIN = Path(sys.executable).parent  # this environment's ray (and imlgcn, mlflow)
HEAD_IP = "127.0.0.2"
HEAD_TIMEOUT_S = 120  # until the head accepts connections
NODE_TIMEOUT_S = 180  # until the cluster sees a node alive (Ray's start-up on a loaded 2-core machine)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def token_auth(folder: Path) -> dict[str, str]:
    """Ray token authentication on (Ray's default for `ray start --head`): a new random token file in
    `folder`, and the environment variables that hand it to every node and driver."""
    token = folder / "ray_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}


def start_cluster(nodes: int, cpus: int, logs: Path, env: Mapping[str, str], started: list[subprocess.Popen],
                  head_ip: str = HEAD_IP, dashboard: bool = False, driver_env: Mapping[str, str] | None = None) -> str:
    """A head on `head_ip` and nodes-1 more on the addresses after it, `cpus` logical CPUs each, run with
    environment `env` (token_auth's variables in it); returns the head's address. One node at a time,
    each waited for until the cluster sees it alive (on 2 cores, nodes starting together time out), by a
    driver with `driver_env` (default `env`). `dashboard`: the head's dashboard on 127.0.0.1, else none.
    Each process is appended to `started` as it starts: stop_cluster(started) stops them however this ends;
    logs go to `logs`/head.log, node1.log, ..."""
    port = free_port(head_ip)
    common = ["--num-cpus", str(cpus), "--block", "--disable-usage-stats"]
    board = ["--dashboard-host", "127.0.0.1"] if dashboard else ["--include-dashboard", "false"]
    started.append(subprocess.Popen([str(BIN / "ray"), "start", "--head", "--node-ip-address", head_ip, "--port",
                                     str(port), *board, "--ray-client-server-port", str(free_port()), *common],
                                    env=dict(env), stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT,
                                    start_new_session=True))
    address = f"{head_ip}:{port}"
    wait_for(lambda: accepts(head_ip, port), HEAD_TIMEOUT_S, "the Ray head")
    for i in range(1, nodes + 1):
        if i > 1:
            node_ip = str(ipaddress.ip_address(head_ip) + i - 1)
            started.append(subprocess.Popen([str(BIN / "ray"), "start", "--address", address, "--node-ip-address",
                                             node_ip, *common], env=dict(env),
                                            stdout=open(logs / f"node{i - 1}.log", "w"), stderr=subprocess.STDOUT,
                                            start_new_session=True))
        wait_for(lambda: alive_nodes(address, driver_env or env) >= i, NODE_TIMEOUT_S,
                 f"Ray node {i} of {nodes} (see {logs})")
    return address


def stop_cluster(started: list[subprocess.Popen]) -> None:
    """Stop what start_cluster started, the head last."""
    stop_groups(*reversed(started))


def stop_groups(*processes: subprocess.Popen) -> None:
    """SIGTERM each process group, wait up to 10 s in all, SIGKILL leftovers (a node whose workers are busy
    took 30 s and more to stop on SIGTERM; the group's SIGKILL takes its raylet and workers with it)."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    deadline = time.time() + 10
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def alive_nodes(address: str, env: Mapping[str, str]) -> int:
    """The nodes of the cluster at `address` that are alive, seen by a driver in a fresh process (0 while
    it cannot connect)."""
    code = ("import ray; ray.init(address=%r, _node_ip_address=%r, logging_level='ERROR'); "
            "print(sum(n['Alive'] for n in ray.nodes()))" % (address, address.rpartition(":")[0]))
    try:
        done = subprocess.run([sys.executable, "-c", code], env=dict(env), capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:  # a loaded machine: not up yet, the caller's deadline decides
        return 0
    return int(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else 0


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if check():
            return
        time.sleep(1)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
