"""CPU seconds of a whole `imlgcn` command: the driver and every process it starts (Ray's daemons, the trial
and worker actors), measured in a cgroup of its own, in variants that differ by environment variables.

Why: on a 2-core machine the test suite and small studies are CPU-bound, so the figure that predicts their
time is the CPU a command burns, not its wall time on a quiet machine; and Ray's daemons are not the
driver's children, so `time` misses them. Variants run alternately (paired), each in a fresh folder.

    python bench/command_cpu.py --repeats 3 --variant base: --variant noprestart:RAY_prestart_worker_first_driver=0

Needs root and cgroup v1's cpuacct controller (/sys/fs/cgroup/cpuacct) or cgroup v2 (/sys/fs/cgroup).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TINY_TRAIN = ["train", "--preset", "demo", "--set", "synthetic_train_images=48", "synthetic_val_images=24",
              "pretrain_epochs=1", "epochs=1", "head_warmup_epochs=0", "image_size=32"]


def _cgroup(name: str) -> tuple[Path, str]:
    """A new cgroup and the file that counts its CPU time in nanoseconds (v1) or microseconds (v2)."""
    v1 = Path("/sys/fs/cgroup/cpuacct")
    if v1.is_dir():
        folder = v1 / name
        folder.mkdir()
        return folder, "cpuacct.usage"
    folder = Path("/sys/fs/cgroup") / name
    folder.mkdir()
    return folder, "cpu.stat"


def _cpu_seconds(folder: Path, counter: str) -> float:
    text = (folder / counter).read_text()
    if counter == "cpuacct.usage":
        return int(text) / 1e9
    return int(dict(line.split() for line in text.splitlines())["usage_usec"]) / 1e6


def measure(command: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """(CPU s, wall s, exit code) of `command` and all it starts, in a fresh working folder."""
    folder, counter = _cgroup(f"imlgcn-bench-{os.getpid()}-{time.monotonic_ns()}")
    try:
        with tempfile.TemporaryDirectory() as work:
            began = time.perf_counter()
            done = subprocess.run(command, cwd=work, env={**os.environ, **env}, capture_output=True, text=True,
                                  preexec_fn=lambda: (folder / "cgroup.procs").write_text(str(os.getpid())))
            wall = time.perf_counter() - began
            time.sleep(2)  # daemons that outlive the command by a moment still count
            seconds = _cpu_seconds(folder, counter)
            for pid in (folder / "cgroup.procs").read_text().split():  # nothing may be left running
                subprocess.run(["kill", "-9", pid], check=False)
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
        return seconds, wall, done.returncode
    finally:
        time.sleep(0.5)
        folder.rmdir()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--variant", action="append", required=True, metavar="NAME:KEY=VALUE,...",
                        help="a name and the environment variables it sets (none: 'base:')")
    parser.add_argument("command", nargs="*", help="imlgcn's arguments (default: a tiny train on the demo data)")
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("imlgcn"))
    command = [exe, *(args.command or TINY_TRAIN)]
    variants = {}
    for spec in args.variant:
        name, _, pairs = spec.partition(":")
        variants[name] = dict(pair.split("=", 1) for pair in pairs.split(",") if pair)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name, env in variants.items():
            cpu, wall, code = measure(command, env)
            print(f"repeat {repeat + 1} {name}: {cpu:.1f} CPU s, {wall:.1f} s wall, exit {code}", flush=True)
            results[name].append((cpu, wall))
    first = next(iter(results))
    base = statistics.mean(c for c, _ in results[first])
    for name, values in results.items():
        cpus = [c for c, _ in values]
        spread = statistics.stdev(cpus) if len(cpus) > 1 else 0.0
        paired = [c - b for (c, _), (b, _) in zip(values, results[first])]
        print(f"{name}: {statistics.mean(cpus):.1f} +- {spread:.1f} CPU s (ratio {statistics.mean(cpus) / base:.3f} "
              f"to {first}; paired difference {statistics.mean(paired):+.1f} s), "
              f"{statistics.mean(w for _, w in values):.1f} s wall")


if __name__ == "__main__":
    main()
