"""A trial that trains in its Tune process reports every epoch's metrics but checkpoints at most every
CHECKPOINT_GAP_S, and Tune keeps its last CHECKPOINTS_KEPT: so the checkpoint that Tune's experiment state
(saved every second) names is still on disk when a driver is killed (see trainables.trial.ray_runtime). Real local
Ray and Tune, a trial of fast epochs."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def _fast_epochs(config: dict) -> None:
    from trainables.trial.ray_runtime import CHECKPOINT_GAP_S, tune_runtime

    runtime = tune_runtime(on_report=lambda report: None, to_tune=lambda report: True,
                           staging_dir=config["staging"])
    for epoch in range(1, 8):
        if epoch == 7:
            time.sleep(CHECKPOINT_GAP_S + 0.2)  # the last epoch comes after the gap: checkpointed again
        folder = tempfile.mkdtemp(dir=runtime.staging_dir)
        Path(folder, "state.txt").write_text(f"{epoch} {time.time()}")
        runtime.report({"epoch": epoch, "mAP": float(epoch)}, folder)


def test_fast_epochs_report_every_epoch_and_checkpoint_once_per_gap(tmp_path):
    from ray import tune

    from study.driver.ray_session import start_ray, stop_ray
    from trainables.trial.ray_runtime import CHECKPOINTS_KEPT

    class Seen(tune.Callback):
        """The epochs whose results reached the driver (Tune's own CSV logger may be switched off)."""
        epochs: list[int] = []

        def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
            self.epochs.append(result["epoch"])

    start_ray(num_cpus=1, worker_logs=False)
    try:
        tuner = tune.Tuner(
            tune.with_resources(_fast_epochs, {"cpu": 1}),
            param_space={"staging": str(tmp_path / "staging" / "trial")},
            run_config=tune.RunConfig(name="gap", storage_path=str(tmp_path / "tune"), callbacks=[Seen()],
                                      checkpoint_config=tune.CheckpointConfig(num_to_keep=CHECKPOINTS_KEPT)))
        result = tuner.fit()[0]
    finally:
        stop_ray()
    assert result.error is None
    assert Seen.epochs == [1, 2, 3, 4, 5, 6, 7]  # every epoch reached Tune
    # What holds however fast the machine is: the last epoch (after the gap) is the newest checkpoint, the
    # kept ones are at least the gap apart, and fewer were written than epochs (1 and 7 on an idle machine;
    # a loaded one may take over CHECKPOINT_GAP_S for epochs 1-6 and checkpoint one of them as well).
    from trainables.trial.ray_runtime import CHECKPOINT_GAP_S

    kept = sorted(Path(result.path).glob("checkpoint_*"))
    states = [Path(folder, "state.txt").read_text().split() for folder in kept]
    assert 1 <= len(kept) <= CHECKPOINTS_KEPT and states[-1][0] == "7"
    written = int(kept[-1].name.rsplit("_", 1)[1]) + 1  # Tune numbers every checkpoint it was given
    assert written < 7, f"{written} checkpoints for 7 fast epochs"
    assert all(float(b[1]) - float(a[1]) >= CHECKPOINT_GAP_S - 0.05 for a, b in zip(states, states[1:]))
    assert not any((tmp_path / "staging").rglob("state.txt"))  # every folder made was removed
