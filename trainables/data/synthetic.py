"""The embedded data set: synthetic multi-label images in MS-COCO 2014 format (real ids and names).

It is the demo every user sees first and the only data CI trains on, so its label structure is COCO's,
not one designed to favour a method:
- label sets are drawn over all 80 COCO classes from a maximum-entropy model whose label and pair
  frequencies are COCO train2014's (`label_model`), then restricted to the chosen class set (labels
  outside it dropped, images left empty dropped), which keeps P(j | i) of every pair in the set;
- the default class set follows a documented rule (`DEFAULT_RULE`) that keeps COCO's strongest
  dependency clusters and a real long tail;
- `labels="independent"` is the control: each label drawn independently with the same frequencies,
  so an effect of label context must vanish there;
- an object's look depends on its class only (`synthetic_render`).
The data seed is its own key: the training seed never changes the data.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image

from trainables.data import label_model
from trainables.data.coco import COCO_CATEGORIES
from trainables.data.labelled_images import DataError
from trainables.data.synthetic_render import Look, coco_difficulty, coco_looks, render
from trainables.seeds import MAX_SEED, in_range

GENERATOR_VERSION = 2  # bump when the output changes, so cached sets are regenerated
ARGS_FILE = "synthetic.json"  # the generator's arguments, to tell a stale or foreign folder apart
LABEL_STRUCTURES = ("coco", "independent")  # = config.SYNTHETIC_LABELS (the config cannot import this module)
DEFAULT_RULE = ("person, plus every class i with at least 1,000 COCO training images that predicts a class "
                "j other than person with P(j | i) >= 0.5, plus those classes j")
MIN_IMAGES, MIN_CONDITIONAL = 1000, 0.5  # the two numbers of DEFAULT_RULE
FREQUENCY_SAMPLE = 20000  # label sets drawn (fixed seed) to measure the frequencies the control copies


def default_classes() -> list[str]:
    """The default class set, by DEFAULT_RULE (27 classes: the kitchen, office, sports, traffic and
    appliance clusters; its rarest class, microwave, has about 36 of 2,000 training images)."""
    names, counts, cooc = label_model.coco_statistics()
    conditional = cooc / counts[:, None]
    person = names.index("person")
    chosen = {person}
    for i in range(len(names)):
        if counts[i] >= MIN_IMAGES:
            partners = [j for j in np.flatnonzero(conditional[i] >= MIN_CONDITIONAL) if j not in (i, person)]
            chosen |= ({i, *partners} if partners else set())
    return [names[i] for i in sorted(chosen)]


def class_set(spec: str) -> list[tuple[int, str, str]]:
    """COCO categories (id, name, supercategory) in category-id order: "default" (DEFAULT_RULE), "all",
    or a comma-separated list of COCO class names."""
    by_name = {name: (cid, name, sup) for cid, name, sup in COCO_CATEGORIES}
    if spec == "default":
        wanted = default_classes()
    elif spec == "all":
        wanted = list(by_name)
    else:
        wanted = [name.strip() for name in spec.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in by_name]
        if unknown or not wanted:
            raise DataError(f"synthetic_classes={spec!r}: {unknown[0] if unknown else 'no class'} is not a COCO "
                            "class name: use default, all, or COCO names separated by commas (e.g. person,cup)")
    return sorted({by_name[name] for name in wanted})


def draw_label_sets(categories: list[tuple[int, str, str]], num: int, labels: str,
                    rng: np.random.Generator) -> list[list[int]]:
    """`num` non-empty label sets over `categories` (column indices), with COCO's structure or independent."""
    if labels not in LABEL_STRUCTURES:
        raise DataError(f"synthetic_labels={labels!r} is not one of {' | '.join(LABEL_STRUCTURES)}")
    if labels == "independent":
        frequencies = _structured_frequencies(categories)
        return [np.flatnonzero(row).tolist() for row in label_model.independent(frequencies, num, rng)]
    return [np.flatnonzero(row).tolist() for row in _restricted(categories, num, rng)]


def _restricted(categories: list[tuple[int, str, str]], num: int, rng: np.random.Generator) -> np.ndarray:
    """Label sets drawn over all 80 classes, restricted to `categories`, empty ones dropped (num x K)."""
    names = label_model.coco_statistics()[0]
    columns = [names.index(name) for _, name, _ in categories]
    h, coupling = label_model.load_model()
    kept = np.zeros((0, len(columns)), np.int8)
    while len(kept) < num:
        draw = label_model.sample(h, coupling, int(1.3 * (num - len(kept))) + 16, rng)[:, columns]
        kept = np.concatenate([kept, draw[draw.sum(axis=1) > 0]])
    return kept[:num]


def _structured_frequencies(categories: list[tuple[int, str, str]]) -> np.ndarray:
    """Label frequencies of the COCO-structured set over `categories` (from a fixed-seed sample)."""
    return _restricted(categories, FREQUENCY_SAMPLE, np.random.default_rng(7)).mean(axis=0)


def _write_split(root: Path, split: str, label_sets: list[list[int]], cats: list[tuple[int, str, str]],
                 looks: list[Look], difficulty: np.ndarray, size: int, seed: int, first_id: int,
                 tick: Callable[[int], None]) -> None:
    """Draw and write one split: `{split}2014/*.png` and `annotations/instances_{split}2014.json`.

    Image ids count from first_id, annotation ids are image id * 1000 + k: unique across both splits."""
    folder = root / f"{split}2014"
    folder.mkdir()
    images, annotations = [], []
    for n, labels in enumerate(label_sets):
        image_id = first_id + n
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, n])  # per image: order-free
        pixels, objects = render(labels, looks, difficulty, size, rng)
        name = f"{split}2014_{image_id:07d}.png"
        Image.fromarray(pixels).save(folder / name, format="PNG", compress_level=6)
        images.append({"id": image_id, "file_name": name, "width": size, "height": size})
        for k, (c, (x, y, w, h)) in enumerate(objects):
            poly = [float(v) for v in (x, y, x + w, y, x + w, y + h, x, y + h)]
            annotations.append({"id": image_id * 1000 + k, "image_id": image_id,
                                "category_id": cats[c][0], "bbox": [float(x), float(y), float(w), float(h)],
                                "area": float(w * h), "iscrowd": 0, "segmentation": [poly]})
        tick(image_id)  # ids count images from 1 across both splits
    doc = {"info": {"description": f"imlgcn synthetic multi-label set, generator v{GENERATOR_VERSION}"},
           "licenses": [], "images": images, "annotations": annotations,
           "categories": [{"id": cid, "name": name, "supercategory": sup} for cid, name, sup in cats]}
    (root / "annotations" / f"instances_{split}2014.json").write_text(json.dumps(doc, separators=(",", ":")))


MIN_IMAGE_SIZE = 2  # pixels: the smallest square the shapes are drawn into (1 px fails in the drawing code)
# The largest set drawn: measured, 3 images at 4096 px took 67 s, 1 GB of memory and 107 MB of disk (1024 px:
# 2.2 MB an image); a size or count past these is a typo, which would otherwise fill the disk or run out of memory
MAX_IMAGE_SIZE = 1024
MAX_IMAGES = 1_000_000  # per split (COCO 2014 has 83k training images)


def generate(out_dir: str | Path, classes: str = "default", labels: str = "coco", train_images: int = 2000,
             val_images: int = 1000, image_size: int = 64, seed: int = 0,
             progress: Callable[[str], None] | None = None) -> Path:
    """Write the synthetic set to out_dir (COCO 2014 layout); same arguments, same bytes.

    Writes into a temporary sibling folder and renames it into place at the end, so a crash never leaves a
    half-written set that looks complete. Refuses a non-empty out_dir.
    """
    out = Path(out_dir).absolute()
    if out.exists() and not out.is_dir():
        raise DataError(f"synthetic data folder {out} is a file: choose a new or empty folder")
    if out.exists() and any(out.iterdir()):
        raise DataError(f"synthetic data folder {out} exists and is not empty: choose a new or empty folder")
    for name, value, least, most in (("train images", train_images, 1, MAX_IMAGES),
                                     ("validation images", val_images, 1, MAX_IMAGES),
                                     ("image size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)):
        if value < least:  # an empty split would be written without a word; a 1-px image cannot hold a shape
            raise DataError(f"synthetic {name} {value}: use at least {least}")
        if value > most:
            raise DataError(f"synthetic {name} {value}: use at most {most:,} (the embedded set is a demo; "
                            "train on your own data set for more)")
    if not in_range(seed):
        raise DataError(f"synthetic data seed {seed}: use an integer in 0..{MAX_SEED}")
    cats = class_set(classes)
    everything = [c[0] for c in COCO_CATEGORIES]
    index = [everything.index(cid) for cid, _, _ in cats]
    looks, difficulty = [coco_looks()[i] for i in index], coco_difficulty()[index]
    rng = np.random.default_rng([seed, 2])
    sets = draw_label_sets(cats, train_images + val_images, labels, rng)
    splits = (("train", sets[:train_images]), ("val", sets[train_images:]))
    total = train_images + val_images

    def tick(done: int) -> None:
        if progress and done * 10 // total > (done - 1) * 10 // total:
            progress(f"synthetic data: {done}/{total} images drawn")

    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    except OSError as error:
        raise DataError(f"cannot write the synthetic data set to {out} ({error.strerror}): choose a writable "
                        "folder") from None
    try:
        os.chmod(tmp, 0o755)
        (tmp / "annotations").mkdir()
        for first_id, (split, split_sets) in zip((1, train_images + 1), splits):
            _write_split(tmp, split, split_sets, cats, looks, difficulty, image_size, seed, first_id, tick)
        args = _args(classes, labels, train_images, val_images, image_size, seed)
        (tmp / ARGS_FILE).write_text(json.dumps(args, indent=1, sort_keys=True))
        with contextlib.suppress(OSError):
            out.rmdir()  # an empty out_dir is replaced; a filled one means another process won the race
        try:
            os.rename(tmp, out)
        except OSError as err:
            raise DataError(f"synthetic data folder {out} was filled by another process while generating "
                            f"({err.strerror}): use it as is or delete it") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _args(classes: str, labels: str, train_images: int, val_images: int, image_size: int, seed: int) -> dict:
    return {"generator_version": GENERATOR_VERSION, "classes": classes, "labels": labels,
            "train_images": train_images, "val_images": val_images, "image_size": image_size, "seed": seed}


def ensure_synthetic(data_dir: str, classes: str, labels: str, train_images: int, val_images: int, image_size: int,
                     seed: int, progress: Callable[[str], None] | None = None) -> Path:
    """The set's folder, generated on first use; data_dir "" = `$IMLGCN_CACHE` (or `~/.cache/imlgcn`) /
    synthetic / a hash of the arguments. Processes may race: the rename is atomic, the loser drops its copy."""
    args = _args(classes, labels, train_images, val_images, image_size, seed)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("IMLGCN_CACHE") or Path.home() / ".cache" / "imlgcn")
    out = Path(data_dir).absolute() if data_dir else cache / "synthetic" / key
    if not _holds(out, args):
        try:
            generate(out, classes, labels, train_images, val_images, image_size, seed, progress)
        except DataError:
            if not _holds(out, args):  # a racing process that finished first is fine; anything else is not
                raise
    return out


def _holds(folder: Path, args: dict) -> bool:
    """False if folder lacks a complete set; DataError if it holds a different one."""
    if not all((folder / "annotations" / f"instances_{s}2014.json").is_file() for s in ("train", "val")):
        return False
    try:
        found = json.loads((folder / ARGS_FILE).read_text())
    except (OSError, ValueError):
        raise DataError(f"{folder} holds a data set without a readable {ARGS_FILE}, so not this generator's: "
                        "use an empty data_dir for the synthetic set, or dataset=coco for COCO") from None
    if found != args:
        diff = ", ".join(f"{k}={found.get(k)} (wanted {v})" for k, v in args.items() if found.get(k) != v)
        raise DataError(f"synthetic data folder {folder} was made with other settings: {diff}: "
                        "use another data_dir (or \"\" for the cache)")
    return True
