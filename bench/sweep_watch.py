"""One `imlgcn study` driver watched from outside, for bench/sweep_scale.py: every SAMPLE_S seconds its CPU
time and resident memory (from /proc), the screened trials finished (read from the Optuna journal as it
grows) and the sizes of the Tune state, the journal and the MLflow store; then per stretch of N trials the
rate, the driver's CPU per trial and the trials' own time (the control for the machine's speed).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

EXE = str(Path(sys.executable).parent / "imlgcn")
SAMPLE_S = 2.0
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
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
