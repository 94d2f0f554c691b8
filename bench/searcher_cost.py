"""Benchmark: the screening searcher's driver CPU per suggestion as the trials add up, with the installed Optuna.

Drives the study's own searcher (study.levels.search.StudySearch over the `paper` space, the journal storage and
the TPE or random sampler exactly as study.levels.tuner builds them) for `--trials` trials without Ray or
training: two trials are always in flight, as when Tune runs two at once, and each is told a result from
a fixed function of its configuration (the same for every Optuna version), so only the searcher's own
work is timed. Prints, per `--every` trials, the median and mean CPU milliseconds of one suggest() and of
one on_trial_complete(), then the last stretch against the first. Run it once per Optuna version to
compare them (another version on the path first: PYTHONPATH=/folder/with/optuna).

    python bench/searcher_cost.py [--trials 1000] [--every 100] [--sampler tpe] [--objective multi]
"""

from __future__ import annotations

import argparse
import functools
import math
import statistics
import tempfile
import time
from collections import deque
from importlib.metadata import version
from pathlib import Path


def fake_result(config: dict, epochs: int) -> dict:
    """A deterministic (mAP, size) of a head configuration: smooth in tau and p, a size that grows with the
    PCA dimension (only the searcher's cost is measured; the values only need to spread)."""
    tau, p = float(config.get("tau", 0.3)), float(config.get("p", 0.25))
    pca = int(config.get("pca_dim", 0) or 0)
    m_ap = 55 + 4 * math.cos(6 * tau) - 3 * (p - 0.3) ** 2 + {"fi": -2.0, "fpca": 1.0, "word": 0.0}.get(
        config.get("embedding"), 0.0) + 0.01 * pca
    return {"mAP": m_ap, "n_params": 490_000 + 64 * pca, "epoch": epochs, "mlflow_run_id": "bench"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--sampler", choices=("tpe", "random"), default="tpe")
    parser.add_argument("--objective", choices=("multi", "map"), default="multi")
    args = parser.parse_args()

    from search_spaces import get_space
    from study.driver.console import quiet_libraries
    from study.levels.search import StudySearch, journal_storage
    from study.levels.tuner import constrained_space, sampler
    from trainables.config import TrialConfig

    quiet_libraries()
    constants = TrialConfig().to_dict()
    chosen = get_space("paper")
    space = functools.partial(constrained_space, head=chosen.head, finetune=None, num_classes=27,
                              constants=constants)
    multi = args.objective == "multi"
    metric, mode = (["mAP", "n_params"], ["max", "min"]) if multi else ("mAP", "max")
    with tempfile.TemporaryDirectory() as folder:
        search = StudySearch(space, metric=metric, mode=mode, study_name="bench:screen",
                             storage=journal_storage(str(Path(folder) / "journal.log")),
                             sampler=sampler(args.sampler, 0, "bench", multi), epochs=constants["epochs"],
                             runs_dir=folder, metric_names=metric if multi else [metric], forget_finished=True)
        suggest_ms: list[float] = []
        tell_ms: list[float] = []
        flight: deque[tuple[str, dict]] = deque()
        asked = 0
        while asked < args.trials or flight:
            while asked < args.trials and len(flight) < 2:
                began = time.process_time()
                config = search.suggest(f"t{asked}")
                suggest_ms.append(1000 * (time.process_time() - began))
                flight.append((f"t{asked}", config))
                asked += 1
            trial_id, config = flight.popleft()
            began = time.process_time()
            search.on_trial_complete(trial_id, fake_result(config, constants["epochs"]))
            tell_ms.append(1000 * (time.process_time() - began))
    print(f"searcher CPU per trial, Optuna {version('optuna')}, Ray {version('ray')}, sampler {args.sampler}, "
          f"objective {args.objective}")
    print(f"{'trials':>12} {'suggest median ms':>18} {'suggest mean ms':>16} {'tell median ms':>15}")
    stretches = []
    for start in range(0, args.trials, args.every):
        s, t = suggest_ms[start:start + args.every], tell_ms[start:start + args.every]
        stretches.append((statistics.median(s), statistics.fmean(s)))
        print(f"{f'{start + 1}-{start + len(s)}':>12} {stretches[-1][0]:18.2f} {stretches[-1][1]:16.2f} "
              f"{statistics.median(t):15.2f}")
    print(f"last / first stretch: suggest median {stretches[-1][0] / stretches[0][0]:.2f}x, mean "
          f"{stretches[-1][1] / stretches[0][1]:.2f}x; all {args.trials}: {sum(suggest_ms) / 1000:.1f} s of "
          f"suggest CPU, {sum(tell_ms) / 1000:.1f} s of tell CPU")


if __name__ == "__main__":
    main()
