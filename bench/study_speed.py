"""Benchmark: where a study's minutes go, and what the two-level study buys. Prints ratios measured in
this one run (timings on a shared 2-core machine are noisy: compare the ratios, not the seconds).

Parts (`--parts`, all by default):
  studies    the default two-level study (screen 500 head configurations on cached features, fine-tune 8)
             against today's single-level study (8 fine-tuning trials, no early stopping) and a naive study
             that retrains the backbone for every trial (8 trials, each with its own stage 1): wall time and
             the hypervolume of each final front against a fixed reference point; from the two-level
             study also the screened trials per minute (all, and the last 100), Spearman's rank correlation
             of screening with fine-tuning, and the non-training share of its fine-tuning trials.
  growth     the driver's preflight and a trial's set-up (split index, datasets, model; features excluded)
             on generated COCO-format annotations of 2k, 20k and 120k images of 4 x 4 pixels.
  epoch      one training epoch inside a Ray Train worker against the same epoch in a plain PyTorch loop
             written here (same data, model, batch and threads).

    python bench/study_speed.py [--parts studies growth epoch] [--out DIR] [--screen 500] [--finetune 8]
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
from study.cli import main

def naive_finetune(trial):
    # a stage-1 setting in the space: every trial gets its own stage-1 key, so it retrains its backbone
    trial.suggest_float("pretrain_lr", 1.9e-3, 2.1e-3)
    return paper.finetune_space(trial)

search_spaces.SPACES["naive"] = SearchSpace(paper.space, naive_finetune)
sys.exit(main(sys.argv[1:]))
"""


def run_studies(out: Path, screen: int, finetune: int) -> dict:
    """The three studies, each in its own storage (no shared stage-1 cache), same seeds."""
    from mlflow.tracking import MlflowClient

    from study.pareto import hypervolume
    from study.report import screening_agreement, trial_table

    results = {}
    plans = {"two-level": ["--screen", str(screen), "--num-samples", str(finetune)],
             "single-level": ["--screen", "0", "--num-samples", str(finetune), "--eta", "0"],
             "naive": ["--screen", "0", "--num-samples", str(finetune), "--eta", "0", "--space", "naive"]}
    for name, extra in plans.items():
        folder = out / name
        folder.mkdir(parents=True, exist_ok=True)
        args = ["study", "run", "--name", name, "--storage", str(folder / "studies"), "--tracking-uri",
                f"sqlite:///{folder}/mlflow.db", *extra, "--set", *SEED_SETS]
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
        trials = trial_table(MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db"), name)
        front = trials[trials["pareto"]]
        row = {"wall_s": seconds, "hypervolume": hypervolume(front["mAP"], front["n_params"].astype(float), *REFERENCE),
               "front": len(front), "finetuned": int((trials["level"] == "finetune").sum()),
               "screened": int((trials["level"] == "screen").sum()), "best_mAP": float(front["mAP"].max())}
        if name == "two-level":
            row.update(_screening_rate(MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db"), name))
            row["rank_correlation"], row["rank_pairs"] = screening_agreement(trials)
            row.update(_non_training_share(MlflowClient(tracking_uri=f"sqlite:///{folder}/mlflow.db"), name))
        results[name] = row
        print(f"[studies] {name}: {json.dumps(row)}", flush=True)
    return results


def _screening_rate(client, name: str) -> dict:
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.level = 'screen' and tags.stage = 'trial'",
                              max_results=50000)
    ends = np.sort([r.info.end_time for r in runs]) / 1000.0
    starts = np.sort([r.info.start_time for r in runs]) / 1000.0
    last = min(100, len(ends) - 1)
    return {"screened_per_min": 60 * len(ends) / (ends[-1] - starts[0]),
            "screened_per_min_last100": 60 * last / (ends[-1] - ends[-1 - last])}


def _non_training_share(client, name: str) -> dict:
    """1 - (training + evaluation epochs) / wall time, over fine-tuning trials that ran all their epochs."""
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id], "tags.level = 'finetune' and tags.stage = 'trial'",
                              max_results=1000)
    shares, phases = [], {}
    for run in runs:
        m = run.data.metrics
        needed = ("phase_train_s", "phase_evaluate_s", "wall_time_s")
        if run.data.tags.get("stopped_early") == "true" or any(k not in m for k in needed):
            continue
        shares.append(1 - (m["phase_train_s"] + m["phase_evaluate_s"]) / m["wall_time_s"])
        for key, value in m.items():
            if key.startswith("phase_"):
                phases.setdefault(key, []).append(value)
        phases.setdefault("wall_time_s", []).append(m["wall_time_s"])
    return {"non_training_share_median": float(np.median(shares)) if shares else float("nan"),
            "non_training_share_max": float(np.max(shares)) if shares else float("nan"),
            "phases_median_s": {k: round(float(np.median(v)), 2) for k, v in sorted(phases.items())}}


def write_coco(folder: Path, images: int, seed: int = 0) -> Path:
    """COCO-format annotations over `images` 4 x 4 PNGs (labels from the label model over 20 classes)."""
    from PIL import Image

    from trainables import label_model
    from trainables.coco import COCO_CATEGORIES

    rng = np.random.default_rng(seed)
    h, coupling = label_model.load_model()
    names = label_model.coco_statistics()[0]
    cats = COCO_CATEGORIES[:20]
    columns = [names.index(name) for _, name, _ in cats]
    labels = label_model.sample(h, coupling, images * 2, rng, sweeps=10)[:, columns]
    labels = labels[labels.sum(axis=1) > 0][:images]
    pixel = Image.new("RGB", (4, 4), (120, 60, 30))
    for split in ("train", "val"):
        (folder / f"{split}2014").mkdir(parents=True, exist_ok=True)
        (folder / "annotations").mkdir(exist_ok=True)
        count = len(labels) if split == "train" else max(10, len(labels) // 50)
        entries, anns = [], []
        for n in range(count):
            name = f"{split}_{n:07d}.png"
            pixel.save(folder / f"{split}2014" / name)
            entries.append({"id": n + 1, "file_name": name, "width": 4, "height": 4})
            for c in np.flatnonzero(labels[n % len(labels)]):
                anns.append({"id": len(anns) + 1, "image_id": n + 1, "category_id": cats[c][0],
                             "bbox": [0, 0, 2, 2], "area": 4, "iscrowd": 0})
        doc = {"images": entries, "annotations": anns,
               "categories": [{"id": cid, "name": name, "supercategory": sup} for cid, name, sup in cats]}
        (folder / "annotations" / f"instances_{split}2014.json").write_text(json.dumps(doc))
    return folder


def run_growth(out: Path) -> dict:
    """Preflight and trial set-up at 2k, 20k and 120k images (best of 3 for the set-up)."""
    from study.preflight import prepare_data
    from trainables.config import TrialConfig
    from trainables.splits import load_splits
    from trainables.stage3 import stage3_model

    table = {}
    for images in (2_000, 20_000, 120_000):
        folder = write_coco(out / f"coco{images}", images)
        config = TrialConfig(dataset="coco", data_dir=str(folder), image_size=32, embedding="none")
        began = time.perf_counter()
        config, classes, index = prepare_data(config, lambda text: None, out / f"coco{images}-index")
        preflight = time.perf_counter() - began
        setups = []
        for _ in range(3):
            began = time.perf_counter()
            splits = load_splits(config, index)
            stage1 = _fake_stage1(config, len(classes))
            stage3_model(config, stage1, splits.train.labels, splits.train.classes)
            setups.append(time.perf_counter() - began)
        table[images] = {"preflight_s": preflight, "trial_setup_s": min(setups)}
        print(f"[growth] {images} images: {json.dumps(table[images])}", flush=True)
    return table


def _fake_stage1(config, classes: int):
    """A stage-1 result without training (its weights do not matter for the set-up time)."""
    from trainables.backbones import create_backbone
    from trainables.stage_cache import Stage1

    import torch

    backbone = create_backbone(config.backbone)
    head = torch.nn.Linear(backbone.num_features, classes)
    return Stage1("bench", backbone.state_dict(), head.state_dict(), np.zeros((1, 1), np.float32),
                  np.zeros((1, 1), np.float32), {"mAP": 0.0})


EPOCH_FN = """
import time, torch
from trainables.config import TrialConfig
from trainables.epochs import train_epoch, train_loader
from trainables.losses import build_loss
from trainables.model import build_model
from trainables.runtime import Runtime
from trainables.splits import load_splits

def epoch_times(config_dict, threads, repeats, runtime=None):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    config = TrialConfig(**config_dict)
    runtime = runtime or Runtime()
    splits = load_splits(config)
    model = build_model(config.backbone, len(splits.train.classes), "none")
    wrapped = runtime.wrap(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = build_loss("asl")
    loader, sampler = train_loader(splits.train_set, config, runtime)
    times = []
    for epoch in range(repeats + 1):  # the first epoch warms up (file cache, allocator)
        sampler.set_epoch(epoch)
        began = time.perf_counter()
        train_epoch(wrapped, loader, loss_fn, optimizer, runtime)
        times.append(time.perf_counter() - began)
    return times[1:]
"""


PLAIN = EPOCH_FN + """
import json, sys
print(json.dumps(epoch_times(json.loads(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))))
"""


def _plain_epochs(config: dict, threads: int, repeats: int, env: dict) -> list[float]:
    """The plain loop in a fresh process (so its OpenMP settings are its own)."""
    done = subprocess.run([sys.executable, "-c", PLAIN, json.dumps(config), str(threads), str(repeats)],
                          capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(f"plain loop failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_epoch(out: Path, threads: int = 2, repeats: int = 4, rounds: int = 3) -> dict:
    """The same epochs in a plain loop (a fresh process, no Ray) and in one Ray Train worker of `threads`
    CPUs, alternated for `rounds` rounds so that the machine's drift hits both alike; medians over all
    epochs after each run's first. The plain loop also runs once with OMP_WAIT_POLICY=PASSIVE (what the
    workers had before, see study.ray_session): what that OpenMP policy alone costs."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from study.preflight import prepare_data
    from study.ray_session import start_ray, stop_ray
    from trainables.config import TrialConfig

    os.environ.setdefault("IMLGCN_CACHE", str(out / "cache"))
    config, _, _ = prepare_data(TrialConfig(), lambda text: None)
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"} | {"PYTHONPATH": str(ROOT)}
    result_file = out / "ray_epochs.json"

    def train_fn(loop_config: dict) -> None:
        from trainables.trainable import worker_runtime

        scope: dict = {}
        exec(EPOCH_FN, scope)
        times = scope["epoch_times"](loop_config["config"], loop_config["threads"], loop_config["repeats"],
                                     worker_runtime())
        Path(loop_config["out"]).write_text(json.dumps(times))

    plain, in_ray = [], []
    for round_ in range(rounds):
        plain += _plain_epochs(config.to_dict(), threads, repeats, env)
        start_ray(num_cpus=threads, worker_logs=False)
        try:
            TorchTrainer(train_fn, train_loop_config={"config": config.to_dict(), "threads": threads,
                                                      "repeats": repeats, "out": str(result_file)},
                         scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": threads}),
                         run_config=RunConfig(name=f"epoch-{round_}", storage_path=str(out / "ray_train"))).fit()
        finally:
            stop_ray()
        in_ray += json.loads(result_file.read_text())
        print(f"[epoch] round {round_ + 1}: plain {[round(t, 2) for t in plain[-repeats:]]} s, "
              f"Ray Train {[round(t, 2) for t in in_ray[-repeats:]]} s", flush=True)
    passive = _plain_epochs(config.to_dict(), threads, repeats, {**env, "OMP_WAIT_POLICY": "PASSIVE"})
    return {"plain_s": float(np.median(plain)), "plain_passive_s": float(np.median(passive)),
            "ray_train_s": float(np.median(in_ray)), "speed_ratio": float(np.median(plain) / np.median(in_ray)),
            "passive_ratio": float(np.median(plain) / np.median(passive))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", nargs="+", default=["studies", "growth", "epoch"],
                        choices=("studies", "growth", "epoch"))
    parser.add_argument("--out", help="work folder (default: a new temporary folder)")
    parser.add_argument("--screen", type=int, default=500)
    parser.add_argument("--finetune", type=int, default=8)
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="imlgcn-bench-")).absolute()
    out.mkdir(parents=True, exist_ok=True)
    print(f"work folder {out}", flush=True)
    summary = {}
    if "epoch" in args.parts:
        summary["epoch"] = run_epoch(out)
    if "growth" in args.parts:
        summary["growth"] = run_growth(out)
    if "studies" in args.parts:
        summary["studies"] = run_studies(out, args.screen, args.finetune)
    print("\n=== summary (ratios from this run) ===")
    if "epoch" in summary:
        e = summary["epoch"]
        print(f"epoch in a Ray Train worker vs a plain loop: {e['ray_train_s']:.2f} s vs {e['plain_s']:.2f} s "
              f"= {e['speed_ratio']:.2f}x the plain loop's speed; the plain loop with OMP_WAIT_POLICY=PASSIVE: "
              f"{e['plain_passive_s']:.2f} s = {e['passive_ratio']:.2f}x")
    if "growth" in summary:
        g = summary["growth"]
        print("images    preflight_s  trial_setup_s  setup / setup(2k)")
        for images, row in g.items():
            print(f"{images:>7}  {row['preflight_s']:11.2f}  {row['trial_setup_s']:13.3f}  "
                  f"{row['trial_setup_s'] / g[2_000]['trial_setup_s']:17.2f}")
    if "studies" in summary:
        s = summary["studies"]
        two = s["two-level"]
        print("study          wall_s  vs two-level  screened  fine-tuned  front  best_mAP  hypervolume  HV / two-level")
        for name, row in s.items():
            print(f"{name:<13} {row['wall_s']:7.0f}  {row['wall_s'] / two['wall_s']:12.2f}  {row['screened']:8d}  "
                  f"{row['finetuned']:10d}  {row['front']:5d}  {row['best_mAP']:8.2f}  {row['hypervolume']:11.0f}  "
                  f"{row['hypervolume'] / two['hypervolume'] if two['hypervolume'] else float('nan'):14.2f}")
        print(f"hypervolume reference point: mAP {REFERENCE[0]}, n_params {REFERENCE[1]:.0f}")
        print(f"screening: {two['screened_per_min']:.0f} trials a minute overall, "
              f"{two['screened_per_min_last100']:.0f} over the last 100")
        print(f"screening vs fine-tuning: Spearman {two['rank_correlation']:.2f} over {two['rank_pairs']} "
              "promoted configurations that ran all their epochs")
        print(f"non-training share of a fine-tuning trial: median {two['non_training_share_median']:.2f}, "
              f"max {two['non_training_share_max']:.2f}; median phases {two['phases_median_s']}")
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
