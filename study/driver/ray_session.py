"""Starting or joining Ray: a private loopback-only instance by default, a cluster with --address.

Ray advertises the machine's network address as its node IP even when told 127.0.0.1 (it rewrites
localhost), so a local run binds to 127.0.0.2: a laptop run exposes nothing and tests stay on
127.0.0.0/8. `address="local"` also ignores any cluster a previous `ray start` registered.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from trainables.config import TrialConfig

LOOPBACK_NODE_IP = "127.0.0.2"

# Ray Train V2 settings for short CPU runs: poll the worker group often (start-up and end of a run
# are quicker) and skip the preemption watcher actor, which matters only on spot clusters.
# Our workers print their own progress lines: Train's print patch would log each one a second time.
TRAIN_ENV = {"RAY_TRAIN_HEALTH_CHECK_INTERVAL_S": "0.5", "RAY_TRAIN_ENABLE_PREEMPTION_WATCHER": "0",
             "RAY_TRAIN_ENABLE_PRINT_PATCH": "0"}
# MLflow prints "View run ... at: URL" when a run ends, with any credentials the tracking URI holds:
# off in every process we start (our own lines print the URI redacted).
# OpenMP keeps its default wait policy: a worker runs as many torch threads as the CPUs Ray gave it,
# so its threads do not compete with another worker's; OMP_WAIT_POLICY=PASSIVE (set here before) made
# an epoch 1.23x slower (bench/study_speed.py --parts epoch at 8dbe46d). A user's own setting is passed on.
WORKER_ENV = {"MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
              "MLFLOW_LOGGING_LEVEL": "INFO"}  # the driver's setting (see study.driver.console) is passed on
PASSED_ON = ("OMP_WAIT_POLICY",)  # the user's, when set
# Ray starts one idle worker per CPU when the first driver connects; ours never run anything, since every
# task and actor of ours carries the job's runtime env (WORKER_ENV) and needs a worker started with it.
# Off: a tiny `imlgcn train` burns 3.3 CPU s less (26.1 -> 22.7, 3 paired runs, bench/command_cpu.py).
LOCAL_SYSTEM_CONFIG = {"prestart_worker_first_driver": False}


def start_ray(address: str | None = None, num_cpus: int | None = None, worker_logs: bool = True,
              state_api: bool = True) -> str:
    """Start a local loopback Ray (address None) or join `address`; returns a one-line description.

    worker_logs=False keeps the Ray processes' own lines off the console (a study's default: its trials
    report through the driver); errors still come back as exceptions with their cause. state_api: a local
    Ray gets its dashboard (which serves Ray's state API) only when asked; see `needs_state_api`.
    """
    import ray

    for key, value in TRAIN_ENV.items():
        os.environ.setdefault(key, value)
    if ray.is_initialized():
        return "Ray already initialised"
    runtime_env = {"env_vars": {**{k: os.environ.get(k, v) for k, v in WORKER_ENV.items()},
                                **{k: os.environ[k] for k in PASSED_ON if k in os.environ}}}
    if address:
        host = address.split("://", 1)[-1].rpartition(":")[0]
        # A driver on a loopback test cluster must say which node it is on: Ray would guess 127.0.0.1,
        # which matches no node there. On a real cluster Ray finds this machine's address itself.
        node_ip = {"_node_ip_address": host} if host.startswith("127.") else {}
        ray.init(address=address, logging_level=_level(), runtime_env=runtime_env, log_to_driver=worker_logs,
                 **node_ip)
        from study.driver.cluster_versions import check_cluster

        try:
            check_cluster()  # every node runs what the driver pickles for it: the same versions, before any trial
        except BaseException:
            ray.shutdown()
            raise
        return f"joined Ray cluster at {address} (every node runs this driver's versions)"
    # Ray Train's PlacementGroupCleaner (it frees a trial's worker placement group if its controller dies)
    # asks the state API for the controller; without an address it reads the cluster file that the last
    # `ray start` on this machine wrote, which may name a cluster long gone: the cleaner then dies with
    # "Timed out while waiting for GCS". Our workers get our own dashboard's address instead.
    board = {"include_dashboard": False}
    if state_api:
        board = {"include_dashboard": True, "dashboard_host": "127.0.0.1", "dashboard_port": _free_port()}
        runtime_env["env_vars"]["RAY_API_SERVER_ADDRESS"] = f"http://127.0.0.1:{board['dashboard_port']}"
    ray.init(address="local", _node_ip_address=LOOPBACK_NODE_IP, num_cpus=num_cpus, runtime_env=runtime_env,
             logging_level=_level(), log_to_driver=worker_logs, _system_config=LOCAL_SYSTEM_CONFIG, **board)
    return f"started a local Ray on {LOOPBACK_NODE_IP} (loopback only)"


def needs_state_api(configs: Iterable[TrialConfig]) -> bool:
    """Whether any of these trainings runs on a Ray Train worker group (data parallel, or train_in_trial
    off): Train's placement-group cleaner then asks Ray's state API, which a local Ray serves through its
    dashboard. One-worker trainings in the trial's process never ask, and a local Ray without its dashboard
    costs 4.1 CPU s less per command (a tiny `imlgcn train`: 22.6 -> 18.5, 3 paired runs of
    bench/command_cpu.py)."""
    from trainables.trial.trainable import trains_in_trial

    return not all(trains_in_trial(config) for config in configs)


def _level() -> int:
    """Ray's own log level: warnings with --verbose, errors only otherwise (no token-auth notice at start)."""
    from study.driver.console import verbose

    return logging.WARNING if verbose() else logging.ERROR


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def cluster_cpus() -> int:
    """CPUs Ray can schedule on (the whole cluster)."""
    import ray

    return int(ray.cluster_resources().get("CPU", 1))


def node_cpus() -> list[int]:
    """The whole CPUs of each alive node."""
    import ray

    return [int(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")]


def worker_slots(cpus_per_worker: int) -> int:
    """How many workers of `cpus_per_worker` CPUs the alive nodes can hold at once (a worker cannot span
    nodes: two 3-CPU nodes hold two 2-CPU workers, not three)."""
    return max(1, sum(cpus // cpus_per_worker for cpus in node_cpus()))


def cluster_gpus() -> int:
    """GPUs Ray can schedule on (the whole cluster)."""
    import ray

    return int(ray.cluster_resources().get("GPU", 0))


def check_gpus(use_gpu: bool, num_workers: int) -> None:
    """use_gpu=true on a cluster without GPUs would wait forever for resources: fail at once instead."""
    from trainables.config import ConfigError

    gpus = cluster_gpus()
    if use_gpu and gpus < 1:
        raise ConfigError("use_gpu=true but the Ray cluster has no GPU: add --set use_gpu=false, "
                          "or join a cluster with GPUs (--address)")
    if use_gpu and gpus < num_workers:
        raise ConfigError(f"num_workers={num_workers} with use_gpu=true needs {num_workers} GPUs, "
                          f"the cluster has {gpus}: lower num_workers")


def stop_ray() -> None:
    """Disconnect (and stop a local instance) now rather than in a slow interpreter-exit hook."""
    import ray

    if ray.is_initialized():
        ray.shutdown()
