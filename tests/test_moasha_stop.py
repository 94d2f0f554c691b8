"""A trial that MOASHA stops frees its CPU at once, in both ways a fine-tuning trial trains.

- in its own Tune trial process (one worker, the default): the trial holds 1 CPU and Tune reuses its
  process for the next trial, as a study's fine-tuning level does;
- on a Ray Train worker actor (data-parallel trials): the trial function holds no CPU, its worker does.
  Train V2's placement groups live outside Tune's accounting and have leaked when Tune stopped a trial
  (ray-project/ray#54305).
Here, on the study's own local Ray (2 CPUs), at most two trials at once: trial A reaches the rung first
and then keeps its CPU until trial C has started (or HOLD_S pass); trial B reaches the rung dominated and is
stopped (unstopped, it would hold its CPU for 2 x HOLD_S more); trial C can only get a CPU if B's was freed,
since A still holds the other one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

QUALITY = {"a": 50.0, "b": 10.0, "c": 30.0}  # mAP each trial reports; same size, so b is dominated by a
# How long A holds its CPU waiting for C. Under CI's load (two end-to-end tests on 2 cores) a TorchTrainer's
# controller and worker actor took over 60 s to start C once B was stopped, and A gave up first (seen on CI
# twice); an unstopped B holds its CPU twice as long, so C can still only start early on B's freed CPU.
HOLD_S = 200


def _epochs(name: str, folder: Path, report) -> None:
    (folder / f"{name}.started").write_text(str(time.time()))
    if name == "b":  # reach the rung after a, whichever process started first (a fixed sleep was a race)
        deadline = time.time() + HOLD_S
        while not (folder / "a.reported").exists() and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # a's result travels on to the scheduler
    for epoch in (1, 2, 3):
        report({"epoch": epoch, "mAP": QUALITY[name], "n_params": 100.0})
        if name == "a" and epoch == 1:  # hold this CPU until c has started
            (folder / "a.reported").write_text(str(time.time()))
            deadline = time.time() + HOLD_S
            while not (folder / "c.started").exists() and time.time() < deadline:
                time.sleep(0.2)
        if name == "b" and epoch == 1:  # would hold its CPU for long if the stop did not free it
            time.sleep(2 * HOLD_S)
    (folder / f"{name}.ended").write_text(str(time.time()))


def _train_fn(loop_config: dict) -> None:
    import ray.train

    _epochs(loop_config["name"], Path(loop_config["folder"]), ray.train.report)


def _on_workers(config: dict) -> None:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from trainables.trial.ray_runtime import stage3_reports

    TorchTrainer(_train_fn, train_loop_config=config,
                 scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 1}),
                 run_config=RunConfig(name=f"stop-{config['name']}", storage_path=config["storage"],
                                      callbacks=[stage3_reports()])).fit()


def _in_trial(config: dict) -> None:
    from ray import tune

    _epochs(config["name"], Path(config["folder"]), tune.report)


MODES = {"in_trial": (_in_trial, {"cpu": 1}, True), "worker_actor": (_on_workers, {"cpu": 0, "memory": 256 * 1024 ** 2}, False)}


@pytest.mark.parametrize("mode", sorted(MODES))
def test_a_stopped_trial_frees_its_cpu_at_once(tmp_path, mode):
    import ray
    from ray import tune

    from study.levels.moasha import MOASHA
    from study.driver.ray_session import start_ray, stop_ray

    folder = tmp_path / "marks"
    folder.mkdir()
    start_ray(num_cpus=2, worker_logs=False)
    try:
        scheduler = MOASHA(max_t=3, grace_period=1, eta=3)
        trial, resources, reuse = MODES[mode]
        tuner = tune.Tuner(
            tune.with_resources(trial, resources),
            param_space={"name": tune.grid_search(["a", "b", "c"]), "folder": str(folder),
                         "storage": str(tmp_path / "train")},
            tune_config=tune.TuneConfig(scheduler=scheduler, max_concurrent_trials=2, reuse_actors=reuse,
                                        metric="mAP", mode="max"),
            run_config=tune.RunConfig(storage_path=str(tmp_path / "tune"), verbose=0))
        results = tuner.fit()
        leaked = [pg for pg in ray.util.placement_group_table().values() if pg["state"] != "REMOVED"]
    finally:
        stop_ray()
    assert not results.errors
    assert scheduler.stopped and not (folder / "b.ended").exists()  # b stopped at the rung (c later too)
    c_started = float((folder / "c.started").read_text())
    a_ended = float((folder / "a.ended").read_text())
    assert c_started < a_ended  # c's worker got b's CPU while a still held the other one
    assert not leaked
