"""Benchmark: torch CPU training steps with 1 vs 2 OpenMP threads, spinning vs passive, with and
without another process holding a core. Prints times and ratios to 1 thread.

Why: spinning OpenMP threads slow down badly when another process holds one of the machine's cores.
Ray Train workers run as many torch threads as the CPUs Ray gives them, so they keep OpenMP's default
policy (PASSIVE cost 1.23x per epoch, measured with this file's policies and study_speed.py at 8dbe46d).

    python bench/omp_threads.py [--model test_resnet] [--steps 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys

STEP = """
import sys, time, torch, timm
torch.set_num_threads(int(sys.argv[1]))
model = timm.create_model(sys.argv[2], num_classes=20)
x = torch.randn(32, 3, 64, 64)
best = float("inf")
for _ in range(int(sys.argv[3])):
    began = time.perf_counter()
    model(x).sum().backward()
    best = min(best, time.perf_counter() - began)
print(best)
"""


def _busy() -> None:
    while True:
        pass


def step_time(threads: int, policy: str, model: str, steps: int) -> float:
    env = {**os.environ, "OMP_WAIT_POLICY": policy}
    out = subprocess.run([sys.executable, "-c", STEP, str(threads), model, str(steps)], env=env,
                         capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="test_resnet")
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args()
    for loaded in (False, True):
        hog = multiprocessing.Process(target=_busy, daemon=True) if loaded else None
        if hog:
            hog.start()
        try:
            base = step_time(1, "PASSIVE", args.model, args.steps)
            print(f"{'one core busy' if loaded else 'idle machine'}: 1 thread {base:.3f} s/step")
            for policy in ("ACTIVE", "PASSIVE"):
                t = step_time(2, policy, args.model, args.steps)
                print(f"  2 threads {policy:7s} {t:.3f} s/step  ratio to 1 thread {t / base:.2f}")
        finally:
            if hog:
                hog.terminate()


if __name__ == "__main__":
    main()
