"""Drawing the embedded data set's images: each class is its own patterned shape (shape x colour x
texture), drawn at a size, faintness and occlusion rate that are fixed per class.

An object's look depends on its class only (never on which other labels the image has, nor on how
frequent the class is), so nothing in the pixels leaks the label structure: what a model learns about
label context it must learn from the labels. Clutter and occluders use the same shapes, colours and
textures in combinations no class has.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

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

def coco_looks() -> list[Look]:
    """One distinct (shape, colour, texture) per COCO category, in category-id order: any two differ in at
    least 2 of the 3 attributes. Fixed for every seed and class set, so a class always looks the same."""
    combos = list(ALL_LOOKS)
    np.random.default_rng(1234).shuffle(combos)
    looks: list[Look] = []
    for min_diff in (2, 1):
        for combo in combos:
            if len(looks) < 80 and combo not in looks and all(
                    sum(a != b for a, b in zip(combo, other)) >= min_diff for other in looks):
                looks.append(combo)
    return looks


def coco_difficulty() -> np.ndarray:
    """A difficulty in [0, 1] per COCO category (category-id order), drawn once from a fixed seed:
    independent of the class's frequency and of its companions."""
    return np.random.default_rng(2024).uniform(0.0, 1.0, 80)



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


def render(labels: list[int], looks: list[Look], difficulty: np.ndarray, size: int,
           rng: np.random.Generator) -> tuple[np.ndarray, list[tuple[int, tuple[int, int, int, int]]]]:
    """One image (size x size x 3 uint8) and its objects (class index, bbox x, y, w, h).

    A class of difficulty d in [0, 1] is drawn at relative size 0.5 - 0.34 d, opacity 0.95 - 0.55 d and
    is half covered by an occluder with probability 0.55 d; 15 % of objects appear twice."""
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
            rel, alpha = 0.5 - 0.34 * difficulty[c], (0.95 - 0.55 * difficulty[c]) * rng.uniform(0.85, 1.0)
            objects.append((rel * rng.uniform(0.8, 1.2), c, alpha, rng.random() < 0.55 * difficulty[c]))
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


