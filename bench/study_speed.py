"""Benchmark: where a study's minutes go. Prints ratios measured in this one run (timings on a shared
2-core machine are noisy: compare the ratios, not the seconds).

Parts (`--parts`, default: modes epoch):
  modes      the default study (screen 500 head configurations on cached features, fine-tune 8) with its
             one-worker fine-tuning trials trained in their own trial processes (train_in_trial=true, the
             default) and on Ray Train worker actors (train_in_trial=false, how every trial trained before):
             wall time, the hypervolume of each final front against a fixed reference point, and per
             fine-tuning trial that ran all its epochs the median phases, the fixed start-up (everything
             before its first training step) and the non-training share (1 - warm-up and epochs with their
             evaluation / the trial's wall time); the screened trials per minute and screening's rank correlation.
  levels     the two-level study against a single-level study (8 fine-tuning trials, no early stopping)
             and a naive one that retrains the backbone for every trial.
  growth     the driver's preflight and a trial's set-up (split index, datasets, head inputs, model) on
             generated COCO-format annotations of 2k, 20k and 120k images of 4 x 4 pixels.
  epoch      one training epoch in a plain PyTorch loop written here (alone, and beside an idle local Ray:
             what Ray's own processes cost), in a Tune trial's own process, in one Ray Train worker actor, and
             split between two worker actors (same data, model, batch; the same CPUs in total), alternated
             over rounds.

    python bench/study_speed.py [--parts modes levels growth epoch] [--out DIR] [--screen 500] [--finetune 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from epoch_speed import run_epoch  # bench/, beside this script
from setup_growth import run_growth

ROOT = Path(__file__).resolve().parents[1]
EXE = str(Path(sys.executable).with_name("imlgcn"))
REFERENCE = (50.0, 0.8e6)  # hypervolume reference point: (mAP, n_params) every front should beat
SEED_SETS = ["seed=0", "data_seed=0"]


def _imlgcn(args: list[str], cwd: Path, env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    began = time.perf_counter()
    done = subprocess.run([EXE, *args], cwd=cwd, capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"imlgcn {' '.join(args[:4])} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - began, done


NAIVE = """
import sys
import search_spaces
from search_spaces import SearchSpace, paper
from study.command.cli import main

def naive_finetune(trial):
    # a stage-1 setting in the space: every trial gets its own stage-1 key, so it retrains its backbone
    trial.suggest_float("pretrain_lr", 1.9e-3, 2.1e-3)
    return paper.finetune_space(trial)

search_spaces.SPACES["naive"] = SearchSpace(paper.space, naive_finetune)
sys.exit(main(sys.argv[1:]))
"""


def run_studies(out: Path, plans: dict[str, list[str]]) -> dict:
    """Each planned study in its own storage (no shared stage-1 cache), same seeds; its wall time, front
    and phases."""
    from study.reports.pareto import hypervolume
    from study.reports.report import screening_agreement, trial_table
    from trainables.trial.mlflow_runs import store

    results = {}
    for name, extra in plans.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        args = ["study", "run", "--name", name, "--storage", str(folder / "studies"), "--tracking-uri",
                f"sqlite:///{folder}/mlflow.db", *extra]
        print(f"[studies] {name}: imlgcn {' '.join(args)}", flush=True)
        env = {**os.environ, "IMLGCN_CACHE": str(out / "cache")}
        if name == "naive":
            began = time.perf_counter()
            done = subprocess.run([sys.executable, "-c", NAIVE, *args], cwd=folder, capture_output=True, text=True,
                                  env={**env, "PYTHONPATH": str(ROOT)})
            seconds = time.perf_counter() - began
            if done.returncode != 0:
                raise SystemExit(f"naive study failed:\n{done.stderr[-3000:]}")
        else:
            seconds, done = _imlgcn(args, folder, env)
        (folder / "stderr.log").write_text(done.stderr)
        runs = store(f"sqlite:///{folder}/mlflow.db")
        trials = trial_table(runs, name)
        front = trials[trials["pareto"]]
        row = {"wall_s": seconds, "hypervolume": hypervolume(front["mAP"], front["n_params"].astype(float), *REFERENCE),
               "front": len(front), "finetuned": int((trials["level"] == "finetune").sum()),
               "screened": int((trials["level"] == "screen").sum()), "best_mAP": float(front["mAP"].max())}
        if row["screened"]:
            row.update(_screening_rate(runs, name))
            row["rank_correlation"], row["rank_pairs"] = screening_agreement(trials)
        row.update(non_training_share(runs, name))
        results[name] = row
        print(f"[studies] {name}: {json.dumps(row)}", flush=True)
    return results


def _screening_rate(runs, name: str) -> dict:
    query = "tags.level = 'screen' and tags.stage = 'trial'"
    screened = runs.search(runs.find_experiment(name), query)
    ends = np.sort([r.info.end_time for r in screened]) / 1000.0
    starts = np.sort([r.info.start_time for r in screened]) / 1000.0
    last = min(100, len(ends) - 1)
    return {"screened_per_min": 60 * len(ends) / (ends[-1] - starts[0]),
            "screened_per_min_last100": 60 * last / (ends[-1] - ends[-1 - last])}


def non_training_share(runs, name: str) -> dict:
    """Over fine-tuning trials that ran all their epochs: 1 - (training epochs: the head's warm-up epochs on
    cached features and the fine-tuning epochs with their evaluation) / wall time, the fixed start-up
    (phase_startup_s: the trial's start to its first training step), and the median of every phase; and the
    start-up of every fine-tuning trial by whether it was its process's first run."""
    query = "tags.level = 'finetune' and tags.stage = 'trial'"
    shares, startups, phases, by_process = [], [], {}, {"first": [], "reused": []}
    for run in runs.search(runs.find_experiment(name), query):
        m = run.data.metrics
        if "phase_startup_s" in m and "runs_in_process" in m:  # every trial, stopped early or not
            by_process["first" if m["runs_in_process"] == 1 else "reused"].append(m["phase_startup_s"])
        needed = ("phase_train_s", "phase_evaluate_s", "phase_startup_s", "wall_time_s")
        if run.data.tags.get("stopped_early") == "true" or any(k not in m for k in needed):
            continue
        shares.append(1 - (m.get("phase_warmup_s", 0.0) + m["phase_train_s"] + m["phase_evaluate_s"]) / m["wall_time_s"])
        startups.append(m["phase_startup_s"])
        for key, value in m.items():
            if key.startswith("phase_"):
                phases.setdefault(key[len("phase_"):-len("_s")], []).append(value)
        phases.setdefault("wall_time", []).append(m["wall_time_s"])

    def median(values: list) -> float:
        return float(np.median(values)) if values else float("nan")

    return {"full_trials": len(shares), "non_training_share_median": median(shares),
            "non_training_share_max": float(np.max(shares)) if shares else float("nan"),
            "startup_s_median": median(startups), "startup_s_max": float(np.max(startups)) if startups else float("nan"),
            "phases_median_s": {k: round(median(v), 2) for k, v in sorted(phases.items())},
            "startup_all_trials": {k: {"trials": len(v), "median_s": round(median(v), 2)} for k, v in by_process.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["modes", "epoch"], choices=("modes", "levels", "growth", "epoch"))
    parser.add_argument("--out", help="work folder (default: a new temporary folder)")
    parser.add_argument("--screen", type=int, default=500)
    parser.add_argument("--finetune", type=int, default=8)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="imlgcn-bench-")).absolute()
    out.mkdir(parents=True, exist_ok=True)
    print(f"work folder {out}", flush=True)
    summary = {}
    two_level = ["--screen", str(args.screen), "--num-samples", str(args.finetune), "--set", *SEED_SETS]
    if "epoch" in args.parts:
        summary["epoch"] = run_epoch(out)
    if "growth" in args.parts:
        summary["growth"] = run_growth(out)
    if "modes" in args.parts:
        summary["modes"] = run_studies(out / "modes", {"in-trial": two_level,
                                                       "worker-actors": [*two_level, "train_in_trial=false"]})
    if "levels" in args.parts:
        summary["levels"] = run_studies(out / "levels", {
            "two-level": two_level,
            "single-level": ["--screen", "0", "--num-samples", str(args.finetune), "--eta", "0", "--set", *SEED_SETS],
            "naive": ["--screen", "0", "--num-samples", str(args.finetune), "--eta", "0", "--space", "naive", "--set",
                      *SEED_SETS]})
    print("\n=== summary (ratios from this run) ===")
    if "epoch" in summary:
        e = summary["epoch"]
        print("epoch                median_s  speed vs the plain loop")
        for key, seconds in e["median_s"].items():
            print(f"{key:<20} {seconds:8.2f}  {e['speed_vs_plain'][key]:23.2f}")
    if "growth" in summary:
        g = summary["growth"]
        print("images    preflight_s  trial_setup_s  setup / setup(2k)")
        for images, row in g.items():
            print(f"{images:>7}  {row['preflight_s']:11.2f}  {row['trial_setup_s']:13.3f}  "
                  f"{row['trial_setup_s'] / g[2_000]['trial_setup_s']:17.2f}")
    for part, first in (("modes", "in-trial"), ("levels", "two-level")):
        if part not in summary:
            continue
        s = summary[part]
        print(f"study          wall_s  vs {first:<9}  screened  fine-tuned  front  best_mAP  hypervolume  HV / {first}")
        for name, row in s.items():
            print(f"{name:<13} {row['wall_s']:7.0f}  {row['wall_s'] / s[first]['wall_s']:12.2f}  {row['screened']:8d}  "
                  f"{row['finetuned']:10d}  {row['front']:5d}  {row['best_mAP']:8.2f}  {row['hypervolume']:11.0f}  "
                  f"{row['hypervolume'] / s[first]['hypervolume'] if s[first]['hypervolume'] else float('nan'):14.2f}")
        print(f"hypervolume reference point: mAP {REFERENCE[0]}, n_params {REFERENCE[1]:.0f}")
        for name, row in s.items():
            if "screened_per_min" in row:
                print(f"{name}: screening {row['screened_per_min']:.0f} trials a minute overall, "
                      f"{row['screened_per_min_last100']:.0f} over the last 100; Spearman with fine-tuning "
                      f"{row['rank_correlation']:.2f} over {row['rank_pairs']} promoted configurations")
            print(f"{name}: fine-tuning trials that ran all their epochs: {row['full_trials']}; non-training share "
                  f"median {row['non_training_share_median']:.3f} (max {row['non_training_share_max']:.3f}); fixed "
                  f"start-up median {row['startup_s_median']:.2f} s (max {row['startup_s_max']:.2f} s); median phases "
                  f"{row['phases_median_s']}")
            split = row["startup_all_trials"]
            print(f"{name}: start-up of every fine-tuning trial, median: {split['first']['median_s']:.2f} s for a "
                  f"process's first ({split['first']['trials']} trials: it imports torch, timm and MLflow), "
                  f"{split['reused']['median_s']:.2f} s in a reused process ({split['reused']['trials']} trials)")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
