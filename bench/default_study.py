"""Benchmark: the default study (`imlgcn study run --name demo --space paper`: 500 head configurations
screened, 8 fine-tuned) at several git revisions in one run, on the same pre-generated embedded data with
the same seeds. Prints per revision its wall time and the hypervolume of its fine-tuned trials that ran all
their epochs, on (mAP, parameters) against a fixed reference point, and both as ratios to the first
revision, and (for revisions that log phases) the median non-training share of a fine-tuned trial that ran
all its epochs and its start-up, as bench/study_speed.py computes them. Timings on a shared 2-core machine
are noisy: compare the ratios of one run.

Each revision is unpacked with `git archive` into the work folder and run with this environment's Python
and packages (so a revision whose dependencies differ cannot be timed here); with `--rounds` > 1 the
revisions alternate, so a slow spell of the machine does not fall on one of them. A study already run
in the work folder (`--out`) is reported again, not rerun.

    python bench/default_study.py [--revs 8dbe46d e649b6c HEAD] [--rounds 1] [--out DIR]
    PYTHONPATH=/folder/with/another/optuna python bench/default_study.py --revs HEAD   # another library version
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))  # study_speed's phase summary
REFERENCE = (50.0, 0.8e6)  # hypervolume reference point: (mAP, n_params) every front should beat
STUDY = ["study", "run", "--name", "demo", "--space", "paper", "--set", "seed=0", "data_seed=0"]
# the revision's own `imlgcn` entry point (entry_point since it exits without the interpreter's teardown)
RUN = ("import sys, study.command.cli as cli; start = getattr(cli, 'entry_point', None); "
       "sys.exit(start() if start else cli.main(sys.argv[1:]))")


def unpack(rev: str, out: Path) -> Path:
    """The tree of `rev` in out/src-<rev> (files only: no .git)."""
    tree = out / f"src-{rev}"
    if not tree.exists():
        tree.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def pregenerate(cache: Path) -> None:
    """Draw the default study's embedded data once, so no revision pays for it (the generator is the same
    at every revision this bench is meant for; each revision checks the set's arguments itself)."""
    from trainables.config import TrialConfig
    from trainables.data.synthetic import ensure_synthetic

    os.environ["IMLGCN_CACHE"] = str(cache)
    c = TrialConfig()
    ensure_synthetic("", c.synthetic_classes, c.synthetic_labels, c.synthetic_train_images, c.synthetic_val_images,
                     c.image_size, c.data_seed)


def run_study(tree: Path, folder: Path, cache: Path) -> float:
    """The default study from `tree`, in `folder` (its own store and studies); its wall seconds, also kept
    in folder/wall_s.txt: a second run of the bench with the same --out reports that study again."""
    if (folder / "wall_s.txt").exists():
        return float((folder / "wall_s.txt").read_text())
    folder.mkdir(parents=True)
    # the revision's tree first; a PYTHONPATH of the caller's follows (another Optuna, say: see --help)
    path = os.pathsep.join(filter(None, [str(tree), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "IMLGCN_CACHE": str(cache)}
    args = [*STUDY, "--storage", str(folder / "studies"), "--tracking-uri", f"sqlite:///{folder}/mlflow.db"]
    began = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", RUN, *args], cwd=folder, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - began
    (folder / "stderr.log").write_text(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"the study of {tree.name} failed:\n{done.stderr[-3000:]}")
    (folder / "wall_s.txt").write_text(f"{seconds:.2f}")
    return seconds


def front_of(folder: Path) -> dict:
    """The fine-tuned trials that ran all their epochs (read with this checkout's report code from the
    revision's MLflow store): mAP, the paper's parameter count and the deployed one (NaN where the revision
    did not log it)."""
    from study.reports.report import trial_table
    from trainables.trial.mlflow_runs import store

    from study_speed import non_training_share

    runs = store(f"sqlite:///{folder}/mlflow.db")
    trials = trial_table(runs, "demo")
    full = trials[(trials["level"] == "finetune") & ~trials["stopped_early"]]
    phases = non_training_share(runs, "demo")
    return {"non_training_share": phases["non_training_share_median"], "startup_s": phases["startup_s_median"],
            "startup_by_process": phases["startup_all_trials"], "mAP": full["mAP"].tolist(), "n_params": full["n_params"].astype(float).tolist(),
            "n_params_inference": full["n_params_inference"].astype(float).tolist(),
            "best_mAP": float(full["mAP"].max()), "full_trials": len(full),
            "screened": int((trials["level"] == "screen").sum())}


def hypervolumes(rows: list[dict]) -> None:
    """Each row's hypervolume on (mAP, parameters) and on (mAP, deployed parameters), against REFERENCE.
    A revision from before the deployed size was logged gets the size the other revisions logged: every
    GCN head on one backbone folds into the same C x d layer, so that size depends only on the backbone and
    the class count, which every revision here shares."""
    from study.reports.pareto import hypervolume

    logged = [size for row in rows for size in row["n_params_inference"] if size == size]
    folded = float(np.median(logged)) if logged else float("nan")
    for row in rows:
        deployed = [size if size == size else folded for size in row["n_params_inference"]]
        row["hv_params"] = hypervolume(row["mAP"], row["n_params"], *REFERENCE)
        row["hv_deployed"] = hypervolume(row["mAP"], deployed, *REFERENCE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--revs", nargs="+", default=["8dbe46d", "e649b6c", "HEAD"])
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--out", help="work folder (default: a new temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="imlgcn-default-study-")).absolute()
    out.mkdir(parents=True, exist_ok=True)
    revs = {rev: subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True,
                                text=True, check=True).stdout.strip() for rev in args.revs}
    cache = out / "cache"
    pregenerate(cache)
    results: dict[str, list[dict]] = {rev: [] for rev in revs}
    for n in range(args.rounds):
        for rev, sha in revs.items():
            folder = out / f"round{n}" / sha
            seconds = run_study(unpack(sha, out), folder, cache)
            row = {"wall_s": round(seconds, 1), **front_of(folder)}
            results[rev].append(row)
            print(f"[round {n + 1}] {rev} ({sha}): {json.dumps(row)}", flush=True)
    hypervolumes([row for rows in results.values() for row in rows])

    def median(rev: str, key: str) -> float:
        return float(np.median([row[key] for row in results[rev]]))

    first = next(iter(revs))
    print(f"\nOptuna {version('optuna')}, Ray {version('ray')}, MLflow {version('mlflow')}, torch {version('torch')}")
    print(f"\nthe default study (500 screened, 8 fine-tuned), {args.rounds} round(s), medians; ratios to {first}; "
          f"hypervolumes of the fine-tuned trials that ran all their epochs on (mAP, parameters) and on (mAP, "
          f"deployed parameters), reference point mAP {REFERENCE[0]}, {REFERENCE[1]:.0f} parameters:")
    print(f"{'revision':>10} {'wall s':>8} {'x':>6} {'HV params':>11} {'x':>6} {'HV deployed':>12} {'x':>6} "
          f"{'best mAP':>9} {'full trials':>11} {'non-training':>12} {'start-up s':>10}")
    for rev in revs:
        ratios = [median(rev, key) / median(first, key) if median(first, key) else float("nan")
                  for key in ("wall_s", "hv_params", "hv_deployed")]
        print(f"{rev:>10} {median(rev, 'wall_s'):8.1f} {ratios[0]:6.2f} {median(rev, 'hv_params'):11.0f} {ratios[1]:6.2f} "
              f"{median(rev, 'hv_deployed'):12.0f} {ratios[2]:6.2f} {median(rev, 'best_mAP'):9.2f} "
              f"{median(rev, 'full_trials'):11.0f} {median(rev, 'non_training_share'):12.3f} {median(rev, 'startup_s'):10.2f}")
    print("non-training: the median share of a fine-tuned trial that ran all its epochs spent outside its warm-up "
          "and epochs (with their evaluation); start-up: its median seconds before its first training step")
    for rev in revs:
        for n, row in enumerate(results[rev], 1):
            split = row["startup_by_process"]
            print(f"{rev} round {n}: start-up of every fine-tuning trial, median {split['first']['median_s']} s for "
                  f"a process's first ({split['first']['trials']} trials), {split['reused']['median_s']} s in a "
                  f"reused process ({split['reused']['trials']} trials)")
    print(f"work folder: {out}")


if __name__ == "__main__":
    main()
