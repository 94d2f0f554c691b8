"""bench/study_speed.py's `growth` part: the driver's preflight and a trial's set-up (split index, datasets,
head inputs, model) on generated COCO-format annotations of 2k, 20k and 120k images of 4 x 4 pixels.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np


def write_coco(folder: Path, images: int, seed: int = 0) -> Path:
    """COCO-format annotations over `images` 4 x 4 PNGs (labels from the label model over 20 classes)."""
    from PIL import Image

    from trainables.data import label_model
    from trainables.data.coco import COCO_CATEGORIES

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
    from study.driver.preflight import prepare_data
    from trainables.config import TrialConfig
    from trainables.stages.gcn_inputs import gcn_inputs
    from trainables.stages.head import head_model
    from trainables.training.splits import load_splits

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
            stage1 = _fake_stage1(config, len(classes), len(splits.train.labels), len(splits.val.labels))
            inputs = gcn_inputs(stage1, splits.train.labels, splits.val.labels, splits.train.classes)
            head_model(config, inputs, stage1.backbone_state)
            setups.append(time.perf_counter() - began)
        table[images] = {"preflight_s": preflight, "trial_setup_s": min(setups)}
        print(f"[growth] {images} images: {json.dumps(table[images])}", flush=True)
    return table


def _fake_stage1(config, classes: int, train: int, val: int):
    """A stage-1 result without training (its weights do not matter for the set-up time)."""
    from trainables.backbones import create_backbone
    from trainables.stages.stage_cache import Stage1

    import torch

    backbone = create_backbone(config.backbone)
    head = torch.nn.Linear(backbone.num_features, classes)
    d = backbone.num_features
    return Stage1("bench", backbone.state_dict(), head.state_dict(), np.zeros((train, d), np.float32),
                  np.zeros((val, d), np.float32), {"mAP": 0.0})
