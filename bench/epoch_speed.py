"""bench/study_speed.py's `epoch` part: one training epoch in a plain PyTorch loop written here (alone, and
beside an idle local Ray: what Ray's own processes cost), in a Tune trial's own process, in one Ray Train
worker actor, and split between two worker actors (same data, model, batch; the same CPUs in total),
alternated over rounds.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


EPOCH_FN = """
import time, torch
from trainables.config import TrialConfig
from trainables.training.epochs import train_epoch, train_loader
from trainables.training.losses import build_loss
from trainables.models.model import build_model
from trainables.training.runtime import Runtime
from trainables.training.splits import load_splits

def epoch_times(config_dict, threads, repeats, runtime=None):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = TrialConfig(**config_dict)
    runtime = runtime or Runtime()
    splits = load_splits(config)
    model = build_model(config.backbone, len(splits.train.classes), "none")
    wrapped = runtime.wrap(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = build_loss("asl")
    loader, sampler = train_loader(splits.train_set, config, runtime)
    times = []
    for epoch in range(repeats + 1):  # the first epoch warms up (file cache, allocator)
        sampler.set_epoch(epoch)
        began = time.perf_counter()
        train_epoch(wrapped, loader, loss_fn, optimizer, runtime)
        times.append(time.perf_counter() - began)
    return times[1:]
"""


PLAIN = EPOCH_FN + """
import json, sys
print(json.dumps(epoch_times(json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
"""


def _plain_epochs(config: dict, threads: int, repeats: int, env: dict) -> list[float]:
    """The plain loop in a fresh process (so its OpenMP settings are its own)."""
    done = subprocess.run([sys.executable, "-c", PLAIN, json.dumps(config), str(threads), str(repeats)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"plain loop failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_epoch(out: Path, threads: int = 2, repeats: int = 3, rounds: int = 3) -> dict:
    """The same epochs in a plain loop (a fresh process, no Ray), in a Tune trial's own process holding
    `threads` CPUs (how a one-worker trial trains now), in one Ray Train worker actor of `threads` CPUs
    (how it trained before) and split between two worker actors of threads / 2 CPUs each (data parallel),
    alternated for `rounds` rounds so that the machine's drift hits all alike; medians over all epochs
    after each run's first."""
    from ray import tune
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from study.driver.preflight import prepare_data
    from study.driver.ray_session import start_ray, stop_ray
    from trainables.config import TrialConfig

    os.environ.setdefault("IMLGCN_CACHE", str(out / "cache"))
    config, _, _ = prepare_data(TrialConfig(), lambda text: None)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result_file = out / "ray_epochs.json"
    arguments = {"config": config.to_dict(), "repeats": repeats, "out": str(result_file)}

    def on_workers(loop_config: dict) -> None:
        from trainables.trial.ray_runtime import worker_runtime

        scope: dict = {}
        exec(EPOCH_FN, scope)
        times = scope["epoch_times"](loop_config["config"], loop_config["threads"], loop_config["repeats"],
                                     worker_runtime())
        if worker_runtime().is_main:
            Path(loop_config["out"]).write_text(json.dumps(times))

    def in_trial(trial_config: dict) -> None:
        scope: dict = {}
        exec(EPOCH_FN, scope)
        times = scope["epoch_times"](trial_config["config"], trial_config["threads"], trial_config["repeats"])
        Path(trial_config["out"]).write_text(json.dumps(times))

    times: dict[str, list[float]] = {"plain": [], "plain_beside_idle_ray": [], "in_trial": [], "one_worker_actor": [],
                                     "two_worker_actors": []}
    for round_ in range(rounds):
        times["plain"] += _plain_epochs(config.to_dict(), threads, repeats, env)
        start_ray(num_cpus=threads, worker_logs=False)
        try:
            # what Ray's own processes (GCS, raylet, dashboard, agents, log monitor) cost a loop on this machine
            times["plain_beside_idle_ray"] += _plain_epochs(config.to_dict(), threads, repeats, env)
            tune.Tuner(tune.with_resources(in_trial, {"cpu": threads}), param_space={**arguments, "threads": threads},
                       run_config=tune.RunConfig(name=f"in-trial-{round_}", storage_path=str(out / "ray_tune"),
                                                 verbose=0)).fit()
            times["in_trial"] += json.loads(result_file.read_text())
            for workers, key in ((1, "one_worker_actor"), (2, "two_worker_actors")):
                TorchTrainer(on_workers, train_loop_config={**arguments, "threads": threads // workers},
                             scaling_config=ScalingConfig(num_workers=workers,
                                                          resources_per_worker={"CPU": threads // workers}),
                             run_config=RunConfig(name=f"epoch-{workers}-{round_}",
                                                  storage_path=str(out / "ray_train"))).fit()
                times[key] += json.loads(result_file.read_text())
        finally:
            stop_ray()
        print(f"[epoch] round {round_ + 1}: " + ", ".join(f"{k} {[round(t, 2) for t in v[-repeats:]]} s"
                                                          for k, v in times.items()), flush=True)
    medians = {k: float(np.median(v)) for k, v in times.items()}
    return {"median_s": medians, "speed_vs_plain": {k: medians["plain"] / v for k, v in medians.items()}}
