"""Benchmark: a screening sweep of N trials (default 10,000) on the embedded data, and how the driver's cost
per trial behaves as the trials add up. Prints, per `--every` trials (default 1,000): trials per minute, the
driver's CPU milliseconds per trial, its resident memory, and the sizes of the Tune state, the Optuna journal
and the MLflow store, and the median of the trials' own time (the same work in every trial: a control for
the machine's speed); then the last stretch against the first (rate ratio, CPU ratio, memory growth per trial).

Then (`--parts report`) `imlgcn study report` of the finished study: seconds and HTML size; and its trial
table read as the report reads it (screened rows from the run markers) against MLflow alone. Then (`--parts
kill`) a second study of the same N is killed with SIGKILL after `--kill-at` of its trials finished and
resumed with `imlgcn study resume`: seconds from the resume to its first new screened trial, and the count
of finished screening runs in MLflow (exactly N, no trial id twice).

`--samplers N` instead compares the screening samplers: the same study (same seeds) screening N trials with
TPE and with random search; per sampler the driver's CPU per trial over the first and the last 500, and
the best mAP and the mean of the best 8 (what promotion takes when every head deploys at the same size)
over the first 500 and over all N screened.

`--cluster K` runs every study on K `ray start` nodes on loopback addresses (127.0.0.2, 127.0.0.3, ...) with
`--cpus-per-node` logical CPUs each, so the driver feeds more concurrent trials than this machine has cores.

    python bench/sweep_scale.py [--trials 10000] [--every 1000] [--cluster 0] [--cpus-per-node 2] [--out DIR]
    python bench/sweep_scale.py --samplers 3000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from study.driver.loopback_cluster import start_cluster, stop_cluster, token_auth
from sweep_watch import Sweep, print_stretches, stretches  # bench/, beside this script

CHEAP = ("epochs=1", "gcn_hidden=64")


def read_rows(sweep: Sweep) -> str:
    """The study's trial table read as the report reads it (screened rows from the run markers, fine-tuned
    ones from MLflow) and from MLflow alone (how it was read before): seconds of each, same table."""
    import warnings

    from study.driver.record import load_record
    from study.reports.report import finished_trial_runs, trial_table
    from trainables.trial.mlflow_runs import store

    record = load_record(sweep.storage, sweep.name)
    runs = store(f"sqlite:///{sweep.db}")
    seconds, tables = {}, {}
    for name, markers in (("markers", record.screened_markers()), ("MLflow", None)):
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tables[name] = trial_table(runs, sweep.name, record.size_metric, finished_trial_runs(runs, sweep.name, markers))
        seconds[name] = time.perf_counter() - began
    same = tables["markers"].equals(tables["MLflow"])
    return (f"trial table of {len(tables['markers'])} rows: from the run markers {seconds['markers']:.1f} s, from MLflow "
            f"alone {seconds['MLflow']:.1f} s ({seconds['MLflow'] / seconds['markers']:.1f}x); the same table: {same}")


def screened_values(journal: Path) -> list[float]:
    """The mAP of each COMPLETE screening trial, in Optuna trial order."""
    import optuna
    from optuna.storages.journal import JournalFileBackend

    storage = optuna.storages.JournalStorage(JournalFileBackend(str(journal)))
    name = next(s.study_name for s in optuna.get_all_study_summaries(storage) if s.study_name.endswith(":screen"))
    trials = optuna.load_study(study_name=name, storage=storage).get_trials(
        deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    return [t.values[0] for t in sorted(trials, key=lambda t: t.number)]


def compare_samplers(out: Path, trials: int, overrides: list[str], address: str | None) -> None:
    import numpy as np

    rows = []
    for sampler in ("tpe", "random"):
        sweep = Sweep(out, f"samplers-{sampler}", trials, address, overrides, sampler=sampler)
        ran = sweep.watch("run")
        cuts = stretches(sweep, 500)
        values = screened_values(sweep.study / "optuna.journal")
        row = {"sampler": sampler, "seconds": ran["seconds"], "cpu_first": cuts[0]["cpu_ms"],
               "cpu_last": cuts[-1]["cpu_ms"], "rate_first": cuts[0]["per_min"], "rate_last": cuts[-1]["per_min"]}
        for n in (500, len(values)):
            best = np.sort(values[:n])[::-1]
            row[f"best@{n}"], row[f"top8@{n}"] = best[0], best[:8].mean()
        rows.append(row)
    print(f"\nscreening samplers, {trials} trials each, same seeds ({' '.join(overrides)}):")
    for r in rows:
        metrics = "  ".join(f"{k} {v:.2f}" for k, v in r.items() if "@" in k)
        print(f"{r['sampler']:>7}: {r['seconds']:.0f} s; driver CPU {r['cpu_first']:.1f} ms/trial over the first 500, "
              f"{r['cpu_last']:.1f} over the last 500; {r['rate_first']:.0f} -> {r['rate_last']:.0f} trials a minute; "
              f"mAP {metrics}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=10_000)
    parser.add_argument("--every", type=int, default=1_000)
    parser.add_argument("--kill-at", type=float, default=0.5, help="fraction of --trials after which to kill")
    parser.add_argument("--cluster", type=int, default=0, help="ray start nodes on loopback (0: a local Ray)")
    parser.add_argument("--cpus-per-node", type=int, default=2)
    parser.add_argument("--parts", nargs="+", default=["sweep", "report", "kill"], choices=("sweep", "report", "kill"),
                        help="sweep: the N-trial study and its stretches; report: its report; kill: the killed study")
    parser.add_argument("--samplers", type=int, default=0, metavar="N",
                        help="compare TPE and random search on N screened trials instead")
    parser.add_argument("--set", nargs="*", default=list(CHEAP), metavar="KEY=VALUE",
                        help="the studies' config (default: a head of one epoch, 64 hidden units: the driver is "
                             "what is measured, and cheap trials load it hardest)")
    parser.add_argument("--out", help="work folder (default: a new temporary folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="sweep_scale_")).absolute()
    out.mkdir(parents=True, exist_ok=True)
    address, procs = None, []
    try:
        if args.cluster:  # stopped below however it ends (procs holds every node started)
            os.environ.update(token_auth(out))  # the token reaches every node, the check and the study drivers
            address = start_cluster(args.cluster, args.cpus_per_node, out, os.environ, procs)
            print(f"cluster: {args.cluster} nodes x {args.cpus_per_node} logical CPUs at {address}", flush=True)
        print(f"config: {' '.join(args.set) or 'the defaults'}", flush=True)
        if args.samplers:
            compare_samplers(out, args.samplers, args.set, address)
            return
        sweep = Sweep(out, "scale", args.trials, address, args.set)
        if "sweep" in args.parts:
            ran = sweep.watch("run")
            print(f"\nscreening sweep of {args.trials} trials: {ran['seconds']:.0f} s in all (references included)")
            print_stretches(stretches(sweep, args.every))
            finished, distinct = sweep.finished_runs()
            print(f"finished screening runs in MLflow: {finished} ({distinct} distinct trial ids)", flush=True)
        if "report" in args.parts:
            began = time.time()
            subprocess.run([*sweep.command("report")], check=True, capture_output=True)
            html = sweep.study / "report" / "pareto.html"
            print(f"imlgcn study report: {time.time() - began:.1f} s, pareto.html {html.stat().st_size / 2**20:.2f} MB",
                  flush=True)
            print(read_rows(sweep), flush=True)
        if "kill" in args.parts:
            killed = Sweep(out, "scale-killed", args.trials, address, args.set)
            cut = int(args.trials * args.kill_at)
            first = killed.watch("run", kill_at=cut)
            print(f"the first driver, killed after {first['killed_at']} screened trials:")
            print_stretches(stretches(killed, args.every))
            first_samples = len(killed.samples)
            resumed = killed.watch("resume", first_new=True)
            finished, distinct = killed.finished_runs()
            print(f"killed with SIGKILL after {first['killed_at']} screened trials ({first['seconds']:.0f} s); "
                  f"`study resume`: first new trial {resumed['first_new_trial_s']:.1f} s after it started, "
                  f"{resumed['seconds']:.0f} s in all; finished screening runs {finished} of {args.trials} "
                  f"({distinct} distinct trial ids)")
            resumed_sweep = Sweep(out, "scale-killed", args.trials, address, args.set, samples=killed.samples[first_samples:])
            print("the resumed driver:")
            print_stretches(stretches(resumed_sweep, args.every))
    finally:
        stop_cluster(procs)
    print(f"work folder: {out}")


if __name__ == "__main__":
    main()
