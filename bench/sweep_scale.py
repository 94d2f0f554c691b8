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
import json
import os
import secrets
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent
EXE = str(BIN / "imlgcn")
SAMPLE_S = 2.0
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
CHEAP = ("epochs=1", "gcn_hidden=64")
COMPLETE, CREATE_STUDY, CREATE_TRIAL, SET_STATE = 1, 0, 4, 6  # Optuna's journal op codes and TrialState


class JournalCounter:
    """Screening trials told COMPLETE in an Optuna journal file, read incrementally (new lines only)."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.rest = path, 0, b""
        self.studies: list[str] = []
        self.trial_study: list[int] = []
        self.created = 0
        self.complete = 0

    def poll(self) -> int:
        if not self.path.exists():
            return 0
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            data = self.rest + handle.read()
            self.offset = handle.tell()
        *lines, self.rest = data.split(b"\n")
        for line in lines:
            op = json.loads(line)
            code = op["op_code"]
            if code == CREATE_STUDY:
                self.studies.append(op["study_name"])
            elif code == CREATE_TRIAL:
                self.trial_study.append(op["study_id"])
                self.created += self.studies[op["study_id"]].endswith(":screen")
            elif code == SET_STATE and op.get("state") == COMPLETE:
                self.complete += self.studies[self.trial_study[op["trial_id"]]].endswith(":screen")
        return self.complete


def driver_cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process (not its children: Ray's daemons are not the driver)."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def driver_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/statm") as handle:
        return int(handle.read().split()[1]) * PAGE / 2**20


def folder_mb(folder: Path, pattern: str) -> float:
    total = 0
    for path in folder.glob(pattern) if folder.exists() else ():
        try:
            total += path.stat().st_size
        except OSError:  # gone since listed (SQLite's -journal comes and goes)
            pass
    return total / 2**20


@dataclass
class Sample:
    t: float
    done: int
    cpu_s: float
    rss_mb: float
    tune_mb: float
    journal_mb: float
    mlflow_mb: float


def read_rows(sweep: "Sweep") -> str:
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


@dataclass
class Sweep:
    """One `imlgcn study run` watched from outside: samples every SAMPLE_S seconds."""
    storage: Path
    name: str
    trials: int
    address: str | None
    overrides: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    @property
    def study(self) -> Path:
        return self.storage / self.name

    @property
    def db(self) -> Path:
        return self.storage / "mlflow.db"

    sampler: str = "auto"

    def command(self, verb: str = "run") -> list[str]:
        where = ["--storage", str(self.storage), "--tracking-uri", f"sqlite:///{self.db}"]
        if self.address:
            where += ["--address", self.address]
        if verb == "run":
            sets = ["--set", *self.overrides] if self.overrides else []
            return [EXE, "study", "run", "--name", self.name, "--screen", str(self.trials), "--num-samples", "1",
                    "--eta", "0", "--sampler", self.sampler, *sets, *where]
        return [EXE, "study", verb, self.name, *where]

    def watch(self, verb: str = "run", kill_at: int = 0, first_new: bool = False) -> dict:
        """Run the driver, sample it; SIGKILL it once `kill_at` screened trials finished (0: never)."""
        counter = JournalCounter(self.study / "optuna.journal")
        log = open(self.storage / f"{self.name}-{verb}.log", "a")
        began = time.time()
        driver = subprocess.Popen(self.command(verb), stdout=log, stderr=subprocess.STDOUT)
        created_before, first_new_s = None, None
        try:
            while driver.poll() is None:
                time.sleep(SAMPLE_S)
                try:
                    cpu, rss = driver_cpu_s(driver.pid), driver_rss_mb(driver.pid)
                except (FileNotFoundError, ProcessLookupError, IndexError):
                    break
                done = counter.poll()
                created_before = counter.created if created_before is None else created_before
                if first_new and first_new_s is None and counter.created > created_before:
                    first_new_s = time.time() - began
                self.samples.append(Sample(time.time() - began, done, cpu, rss,
                                           folder_mb(self.study / "tune", "*/experiment_state*.json"),
                                           folder_mb(self.study, "optuna.journal"), folder_mb(self.storage, "mlflow.db*")))
                if kill_at and done >= kill_at:
                    driver.send_signal(signal.SIGKILL)
                    driver.wait()
                    return {"killed_at": done, "seconds": time.time() - began}
            code = driver.wait()
        finally:
            if driver.poll() is None:
                driver.kill()
        if code != 0:
            raise SystemExit(f"imlgcn study {verb} {self.name} exited {code}: see {log.name}")
        return {"seconds": time.time() - began, "first_new_trial_s": first_new_s}

    def finished_runs(self) -> tuple[int, int]:
        """(FINISHED screening runs in MLflow, distinct trial ids among them)."""
        with sqlite3.connect(self.db) as db:
            rows = db.execute(
                "select t.value from runs r join tags t on t.run_uuid = r.run_uuid and t.key = 'trial_id' "
                "join tags l on l.run_uuid = r.run_uuid and l.key = 'level' and l.value = 'screen' "
                "join experiments e on e.experiment_id = r.experiment_id and e.name = ? "
                "where r.status = 'FINISHED'", (self.name,)).fetchall()
        return len(rows), len({r[0] for r in rows})


def at(samples: list[Sample], done: int) -> Sample:
    """The first sample at or past `done` finished trials."""
    return next(s for s in samples if s.done >= done)


def trial_compute_ms(sweep: Sweep) -> list[float]:
    """Each screened trial's own time (its wall_time_s: the same work for every trial), in the order they
    ended, read from the run markers: the control that tells a slower machine from a slower driver."""
    from trainables.trial.run_markers import logged_runs

    runs = [run for folder in sorted((sweep.study / "mlflow_runs").glob("*")) for run in logged_runs(str(folder))[0]]
    return [run.metrics["wall_time_s"] * 1000 for run in sorted(runs, key=lambda run: run.end_time)
            if "wall_time_s" in run.metrics]


def stretches(sweep: Sweep, every: int) -> list[dict]:
    """Per `every` finished trials (from the first sample with a finished trial: a resumed driver starts
    where the killed one stopped): rate, driver CPU per trial, the sizes at the stretch's end, and the
    median of the trials' own time (trial_compute_ms)."""
    rows = []
    compute = trial_compute_ms(sweep)
    start = next((s for s in sweep.samples if s.done > 0), None)
    if start is None:
        return rows
    last = sweep.samples[-1].done
    marks = [start.done] + list(range((start.done // every + 1) * every, last + 1, every))
    for low, high in zip(marks, marks[1:]):
        a = start if low == start.done else at(sweep.samples, low)
        b = at(sweep.samples, high)
        n = max(b.done - a.done, 1)
        rows.append({"trials": f"{low + 1}-{high}", "per_min": n / max(b.t - a.t, 1e-9) * 60,
                     "cpu_ms": (b.cpu_s - a.cpu_s) / n * 1000, "rss_mb": b.rss_mb, "tune_mb": b.tune_mb,
                     "journal_mb": b.journal_mb, "mlflow_mb": b.mlflow_mb,
                     "trial_ms": statistics.median(compute[low:high]) if compute[low:high] else float("nan")})
    return rows


def print_stretches(rows: list[dict]) -> None:
    print(f"{'trials':>13} {'per min':>8} {'driver CPU ms/trial':>20} {'driver RSS MB':>14} {'Tune state MB':>14} "
          f"{'journal MB':>11} {'MLflow MB':>10} {'trial ms (control)':>19}")
    for r in rows:
        print(f"{r['trials']:>13} {r['per_min']:>8.0f} {r['cpu_ms']:>20.1f} {r['rss_mb']:>14.0f} {r['tune_mb']:>14.1f} "
              f"{r['journal_mb']:>11.1f} {r['mlflow_mb']:>10.1f} {r['trial_ms']:>19.1f}")
    if len(rows) >= 2:
        first, last = rows[0], rows[-1]
        trials = int(last["trials"].split("-")[1]) - int(first["trials"].split("-")[1])
        print(f"last / first stretch: rate {last['per_min'] / first['per_min']:.2f}x, driver CPU per trial "
              f"{last['cpu_ms'] / first['cpu_ms']:.2f}x; driver memory growth "
              f"{(last['rss_mb'] - first['rss_mb']) * 1024 / max(trials, 1):.1f} KB per trial "
              f"(end of first stretch to end of last); the trials' own time {last['trial_ms'] / first['trial_ms']:.2f}x "
              f"(the same work: above 1, the machine itself was slower)")


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


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def start_cluster(nodes: int, cpus: int, logs: Path, procs: list[subprocess.Popen]) -> str:
    """A head on 127.0.0.2 and nodes-1 more on 127.0.0.3..., `cpus` logical CPUs each, with token
    authentication (Ray's default for `ray start --head`): the token file reaches every node, the check and
    the study drivers through the environment."""
    token = logs / "ray_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    os.environ.update({"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)})
    head_ip, port = "127.0.0.2", free_port("127.0.0.2")
    common = ["--num-cpus", str(cpus), "--block", "--disable-usage-stats"]
    procs.append(subprocess.Popen([str(BIN / "ray"), "start", "--head", "--node-ip-address", head_ip, "--port", str(port),
                               "--include-dashboard", "false", "--ray-client-server-port", str(free_port("127.0.0.1")),
                               *common], stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT,
                              start_new_session=True))
    address = f"{head_ip}:{port}"
    for i in range(1, nodes + 1):  # one node at a time: on 2 cores, nodes starting together time out
        if i > 1:
            procs.append(subprocess.Popen([str(BIN / "ray"), "start", "--address", address, "--node-ip-address",
                                           f"127.0.0.{1 + i}", *common], stdout=open(logs / f"node{i - 1}.log", "w"),
                                          stderr=subprocess.STDOUT, start_new_session=True))
        code = ("import ray, time; ray.init(address=%r, _node_ip_address=%r, logging_level='ERROR')\n"
                "while sum(n['Alive'] for n in ray.nodes()) < %d: time.sleep(1)" % (address, head_ip, i))
        for attempt in range(30):  # the head may not accept connections yet
            if subprocess.run([sys.executable, "-c", code], timeout=300, capture_output=True).returncode == 0:
                break
            time.sleep(2)
        else:
            raise RuntimeError(f"Ray node {i} of {nodes} did not join: see {logs}/node{i - 1}.log")
    return address


def stop_cluster(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


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
            address = start_cluster(args.cluster, args.cpus_per_node, out, procs)
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
