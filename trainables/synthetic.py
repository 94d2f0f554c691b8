"""The embedded data set: synthetic multi-label images in MS-COCO 2014 format (real ids and names).

It is the demo and the only data CI trains on, so label context must help: label sets follow the real COCO
co-occurrence, each class is its own pattern (shape x colour x texture), and classes that a frequent
companion predicts are drawn small, faint and often occluded while the companions stay large and clear.
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
from PIL import Image, ImageDraw

from trainables.coco import COCO_CATEGORIES
from trainables.labelled_images import DataError

GENERATOR_VERSION = 1  # bump when the output changes, so cached sets are regenerated
STATS_PATH = Path(__file__).parent / "resources" / "coco2014_train_label_stats.npz"
COCO_TRAIN_IMAGES = 82081  # train2014 images with at least one annotation (the stats' denominator)
MEAN_LABELS = 2.9  # labels per image in COCO
ARGS_FILE = "synthetic.json"  # the generator's arguments, to tell a stale or foreign folder apart
SHAPES = ("ellipse", "square", "ring", "triangle", "diamond", "cross", "hexagon", "ell")
COLOURS = np.array([(0.9, 0.15, 0.1), (0.1, 0.75, 0.2), (0.15, 0.3, 0.95), (0.95, 0.85, 0.1),
                    (0.85, 0.15, 0.8), (0.1, 0.85, 0.85), (1.0, 0.5, 0.0), (0.95, 0.95, 0.95)], np.float32)
TEXTURES = ("solid", "hstripes", "vstripes", "checker", "dots")
_POLYGONS = {"square": ((0, 0), (1, 0), (1, 1), (0, 1)), "triangle": ((0.5, 0), (1, 1), (0, 1)),
             "diamond": ((0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)),
             "hexagon": ((0.25, 0), (0.75, 0), (1, 0.5), (0.75, 1), (0.25, 1), (0, 0.5)),
             "ell": ((0, 0), (0.4, 0), (0.4, 0.6), (1, 0.6), (1, 1), (0, 1)),
             "cross": ((1 / 3, 0), (2 / 3, 0), (2 / 3, 1 / 3), (1, 1 / 3), (1, 2 / 3), (2 / 3, 2 / 3),
                       (2 / 3, 1), (1 / 3, 1), (1 / 3, 2 / 3), (0, 2 / 3), (0, 1 / 3), (1 / 3, 1 / 3))}
Look = tuple[int, int, int]  # (shape, colour, texture) indices
ALL_LOOKS = [(s, c, t) for t in range(len(TEXTURES)) for c in range(len(COLOURS)) for s in range(len(SHAPES))]


def label_stats(num_classes: int) -> tuple[list[tuple[int, str, str]], np.ndarray, np.ndarray]:
    """The `num_classes` most frequent COCO classes, in category-id order: categories, counts, co-occurrence."""
    with np.load(STATS_PATH, allow_pickle=False) as stats:
        names, counts, cooc = list(stats["classes"]), stats["image_counts"], stats["cooccurrence"]
    top = set(np.argsort(-counts, kind="stable")[:num_classes].tolist())
    cats = [c for c in COCO_CATEGORIES if names.index(c[1]) in top]
    idx = [names.index(c[1]) for c in cats]
    return cats, counts[idx].astype(np.float64), cooc[np.ix_(idx, idx)].astype(np.float64)


def sample_label_sets(num_images: int, counts: np.ndarray, cooccurrence: np.ndarray,
                      rng: np.random.Generator, mean_labels: float = MEAN_LABELS) -> list[list[int]]:
    """Label sets whose pairwise co-occurrence follows the real statistics.

    Sequential conditional sampler: the set size is 1 + Poisson(mean_labels - 1); the first label is drawn by
    frequency, each next one with weight mean_{i in set} P(j | i) (real conditional probabilities).
    """
    num = len(counts)
    cond = cooccurrence / np.maximum(counts, 1.0)[:, None]
    prior = counts / counts.sum()
    sizes = np.minimum(num, 1 + rng.poisson(mean_labels - 1.0, size=num_images))
    sets = []
    for size in sizes:
        labels = [int(rng.choice(num, p=prior))]
        total = cond[labels[0]].copy()
        while len(labels) < size:
            weights = total / len(labels) + 1e-6 * prior  # the tiny prior keeps isolated classes reachable
            weights[labels] = 0.0
            labels.append(int(rng.choice(num, p=weights / weights.sum())))
            total += cond[labels[-1]]
        sets.append(sorted(labels))
    return sets


def hardness(counts: np.ndarray, cooccurrence: np.ndarray) -> np.ndarray:
    """Per class in [0, 1]: how well a more frequent companion predicts it (rank of P(i|j) - P(i))."""
    cond = cooccurrence / np.maximum(counts, 1.0)[:, None]  # row j: P(i | j)
    gain = cond - counts[None, :] / COCO_TRAIN_IMAGES
    gain[counts[None, :] <= counts[:, None]] = -1.0  # only companions more frequent than the class
    score = gain.max(axis=1)
    rank = np.argsort(np.argsort(score, kind="stable"), kind="stable")
    return np.where(score < 0, 0.0, rank / max(len(counts) - 1, 1))


def class_looks(num_classes: int) -> list[Look]:
    """Distinct (shape, colour, texture) per class: greedy, any two differ in 2+ attributes while possible."""
    combos = list(ALL_LOOKS)
    np.random.default_rng(1234).shuffle(combos)  # fixed: the same class looks the same in every seed
    looks: list[Look] = []
    for min_diff in (2, 1):
        for combo in combos:
            if len(looks) < num_classes and combo not in looks and all(
                    sum(a != b for a, b in zip(combo, other)) >= min_diff for other in looks):
                looks.append(combo)
    return looks


def _shape_mask(shape: str, w: int, h: int) -> np.ndarray:
    mask = Image.new("L", (w, h), 0)
    draw = ImageDraw.Draw(mask)
    if shape in ("ellipse", "ring"):
        ring = shape == "ring"
        draw.ellipse((0, 0, w - 1, h - 1), fill=None if ring else 255, outline=255,
                     width=max(2, min(w, h) // 4) if ring else 1)
    else:
        draw.polygon([(x * (w - 1), y * (h - 1)) for x, y in _POLYGONS[shape]], fill=255)
    return np.asarray(mask, np.float32) / 255.0


def _texture(texture: str, w: int, h: int) -> np.ndarray:
    period = max(1, round(min(w, h) / 8))
    y, x = np.mgrid[0:h, 0:w] // period
    pattern = {"solid": np.ones((h, w)), "hstripes": y % 2 == 0, "vstripes": x % 2 == 0,
               "checker": (x + y) % 2 == 0, "dots": (x % 2 == 0) & (y % 2 == 0)}[texture]
    return np.where(pattern, 1.0, 0.3).astype(np.float32)


def _paint(img: np.ndarray, look: Look, box: tuple[int, int, int, int], alpha: float,
           rng: np.random.Generator) -> None:
    """Alpha-blend one patterned shape into img (H x W x 3 floats) in place."""
    x, y, w, h = box
    colour = np.clip(COLOURS[look[1]] + rng.uniform(-0.08, 0.08, 3), 0, 1).astype(np.float32)
    a = alpha * _shape_mask(SHAPES[look[0]], w, h)[..., None]
    fill = _texture(TEXTURES[look[2]], w, h)[..., None] * colour
    region = img[y:y + h, x:x + w]
    region[:] = region * (1 - a) + fill * a


def _box(size: int, rel: float, rng: np.random.Generator) -> tuple[int, int, int, int]:
    w = int(np.clip(round(size * rel * rng.uniform(0.8, 1.2)), 4, size))
    h = int(np.clip(round(w * rng.uniform(0.8, 1.25)), 4, size))
    return int(rng.integers(0, size - w + 1)), int(rng.integers(0, size - h + 1)), w, h


def render(labels: list[int], looks: list[Look], hard: np.ndarray, size: int,
           rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """One image (size x size x 3 uint8) and its objects (class index, bbox x, y, w, h). Clutter and occluders
    are distractors: the classes' shapes, colours and textures in other combinations."""
    distractors = [c for c in ALL_LOOKS if c not in looks]
    occluders = [d for d in distractors if SHAPES[d[0]] == "square"]
    base = rng.uniform(0.2, 0.8, 3)
    base = 0.4 * base + 0.6 * base.mean()
    ramp = np.linspace(-1, 1, size)[:, None] * rng.uniform(-1, 1) + np.linspace(-1, 1, size) * rng.uniform(-1, 1)
    img = (base[None, None, :] + 0.12 * ramp[..., None]).astype(np.float32)
    for _ in range(int(rng.integers(2, 6))):  # clutter: other combinations of the same attributes
        look = distractors[int(rng.integers(len(distractors)))]
        _paint(img, look, _box(size, rng.uniform(0.12, 0.4), rng), float(rng.uniform(0.3, 0.8)), rng)
    objects = []
    for c in labels:
        for _ in range(1 + int(rng.random() < 0.15)):
            rel, alpha = 0.5 - 0.34 * hard[c], (0.95 - 0.55 * hard[c]) * rng.uniform(0.85, 1.0)
            objects.append((rel * rng.uniform(0.8, 1.2), c, alpha, rng.random() < 0.55 * hard[c]))
    objects.sort(key=lambda o: -o[0])  # large first, so small objects are not simply painted over
    annotations = []
    for rel, c, alpha, occluded in objects:
        box = _box(size, rel, rng)
        _paint(img, looks[c], box, alpha, rng)
        annotations.append((c, box))
        if occluded:  # cover 30-60% of the object with a distractor
            x, y, w, h = box
            ow, oh = max(2, int(w * rng.uniform(0.5, 0.8))), max(2, int(h * rng.uniform(0.6, 0.8)))
            occluder = occluders[int(rng.integers(len(occluders)))]
            corner = (x + int(rng.integers(0, w - ow + 1)), y + int(rng.integers(0, h - oh + 1)))
            _paint(img, occluder, (*corner, ow, oh), 0.9, rng)
    img += rng.normal(0.0, 0.04, img.shape).astype(np.float32)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8), annotations


def _write_split(root: Path, split: str, label_sets: list[list[int]], cats: list[tuple[int, str, str]],
                 looks: list[Look], hard: np.ndarray, size: int, seed: int, first_id: int,
                 tick: Callable[[int], None]) -> None:
    """Draw and write one split: `{split}2014/*.png` and `annotations/instances_{split}2014.json`.

    Image ids count from first_id, annotation ids are image id * 1000 + k: unique across both splits."""
    folder = root / f"{split}2014"
    folder.mkdir()
    images, annotations = [], []
    for n, labels in enumerate(label_sets):
        image_id = first_id + n
        rng = np.random.default_rng([seed, 0 if split == "train" else 1, n])  # per image: order-free
        pixels, objects = render(labels, looks, hard, size, rng)
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


def generate(out_dir: str | Path, num_classes: int = 20, train_images: int = 3000, val_images: int = 1000,
             image_size: int = 64, seed: int = 0, progress: Callable[[str], None] | None = None) -> Path:
    """Write the synthetic set to out_dir (COCO 2014 layout); same arguments, same bytes.

    Writes into a temporary sibling folder and renames it into place at the end, so a crash never leaves a
    half-written set that looks complete. Refuses a non-empty out_dir.
    """
    out = Path(out_dir).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"synthetic data folder {out} exists and is not empty: choose a new or empty folder")
    if not 1 <= num_classes <= 80:
        raise DataError(f"num_classes={num_classes} for {out}: COCO has 80 classes, use 1..80")
    cats, counts, cooc = label_stats(num_classes)
    looks, hard = class_looks(num_classes), hardness(counts, cooc)
    rng = np.random.default_rng([seed, 2])
    splits = (("train", sample_label_sets(train_images, counts, cooc, rng)),
              ("val", sample_label_sets(val_images, counts, cooc, rng)))
    total = train_images + val_images

    def tick(done: int) -> None:
        if progress and done * 10 // total > (done - 1) * 10 // total:
            progress(f"synthetic data: {done}/{total} images drawn")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        os.chmod(tmp, 0o755)
        (tmp / "annotations").mkdir()
        for first_id, (split, sets) in zip((1, train_images + 1), splits):
            _write_split(tmp, split, sets, cats, looks, hard, image_size, seed, first_id, tick)
        args = _args(num_classes, train_images, val_images, image_size, seed)
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


def _args(num_classes: int, train_images: int, val_images: int, image_size: int, seed: int) -> dict:
    return {"generator_version": GENERATOR_VERSION, "num_classes": num_classes, "train_images": train_images,
            "val_images": val_images, "image_size": image_size, "seed": seed}


def ensure_synthetic(data_dir: str, num_classes: int, train_images: int, val_images: int, image_size: int,
                     seed: int, progress: Callable[[str], None] | None = None) -> Path:
    """The set's folder, generated on first use; data_dir "" = `$IMLGCN_CACHE` (or `~/.cache/imlgcn`) /
    synthetic / a hash of the arguments. Processes may race: the rename is atomic, the loser drops its copy."""
    args = _args(num_classes, train_images, val_images, image_size, seed)
    key = hashlib.sha256(json.dumps(args, sort_keys=True).encode()).hexdigest()[:12]
    cache = Path(os.environ.get("IMLGCN_CACHE") or Path.home() / ".cache" / "imlgcn")
    out = Path(data_dir).absolute() if data_dir else cache / "synthetic" / key
    if not _holds(out, args):
        try:
            generate(out, num_classes, train_images, val_images, image_size, seed, progress)
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
