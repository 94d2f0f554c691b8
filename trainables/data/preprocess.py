"""Preprocessing and augmentation from timm: the backbone's own normalisation at our square input size.

`resolve_model_data_config` gives the mean, std and interpolation the backbone was trained with (TResNet
expects [0, 1] inputs, ResNets ImageNet statistics); `create_transform` builds the transforms. Images
are squash-resized to image_size x image_size, never cropped: a crop would cut small objects (the
labels) out of 4:3 COCO images. The same dict is saved with an exported model, so `imlgcn predict`
preprocesses exactly as training evaluated.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator

from PIL import Image, ImageOps
from timm.data import create_transform, resolve_model_data_config
from torchvision import transforms
from torchvision.transforms import InterpolationMode

from trainables.backbones import meta_backbone


def data_config(backbone: str, image_size: int) -> dict[str, Any]:
    """timm's data config of `backbone` (mean, std, interpolation) at a square `image_size`, no crop."""
    resolved = resolve_model_data_config(meta_backbone(backbone))  # only its pretrained_cfg is read
    return {"input_size": [3, image_size, image_size], "interpolation": resolved["interpolation"],
            "mean": [float(v) for v in resolved["mean"]], "std": [float(v) for v in resolved["std"]],
            "crop_pct": 1.0, "crop_mode": "squash"}


def build_transforms(preprocess: dict[str, Any], training: bool, augment: str = "") -> Callable:
    """Eval: squash-resize + normalise. Training: squash-resize, then timm's training transform with a
    horizontal flip and `augment` (a timm auto-augment string, e.g. 'rand-m9-mstd0.5-inc1' = RandAugment
    as ASL; '' = flip only). With scale = ratio = 1 its random crop keeps the whole (already square) image.
    """
    size = tuple(preprocess["input_size"])
    common = {"input_size": size, "interpolation": preprocess["interpolation"],
              "mean": tuple(preprocess["mean"]), "std": tuple(preprocess["std"])}
    if not training:
        return create_transform(is_training=False, crop_pct=1.0, crop_mode="squash", **common)
    squash = transforms.Resize(size[1:], interpolation=_interpolation(preprocess["interpolation"]))
    train = create_transform(is_training=True, scale=(1.0, 1.0), ratio=(1.0, 1.0), hflip=0.5, vflip=0.0,
                             color_jitter=None, auto_augment=augment or None, **common)
    for op in _augment_ops(train):
        if op.name.startswith("Posterize"):
            op.aug_fn = posterize
    return transforms.Compose([squash, train])


def posterize(image: Image.Image, bits_to_keep: int, **_: Any) -> Image.Image:
    """Keep the `bits_to_keep` most significant bits of each channel, for 0 <= bits <= 8.

    timm's RandAugment maps the magnitude 10 (reached whenever the sampled magnitude, mean 9, sd 0.5, is
    clipped at its maximum) to 0 bits for PosterizeIncreasing, as TensorFlow's RandAugment does: keep no
    bit, a black image. Pillow >= 13 refuses 0 bits (`ValueError: bits must be between or equal to 1
    and 8`), so timm's own op crashed about one image in a thousand. This op is timm's with that case
    defined as TensorFlow and Pillow < 13 define it (mask ~(2^(8 - bits) - 1) = 0): the magnitudes, the
    choice of ops and every other output are unchanged, so RandAugment's distribution is the same.
    """
    if bits_to_keep >= 8:
        return image
    if bits_to_keep >= 1:
        return ImageOps.posterize(image, bits_to_keep)
    return image.point([0] * 256 * len(image.getbands()))  # no bit kept: black


def _augment_ops(transform: Any) -> Iterator[Any]:
    """timm's AugmentOps inside a transform (RandAugment and AugMix keep `ops`, AutoAugment `policy`)."""
    for step in getattr(transform, "transforms", ()):
        yield from getattr(step, "ops", ())
        for sub_policy in getattr(step, "policy", ()):
            yield from sub_policy


def _interpolation(name: str) -> InterpolationMode:
    return {"bicubic": InterpolationMode.BICUBIC, "nearest": InterpolationMode.NEAREST}.get(
        name, InterpolationMode.BILINEAR)


def check_augment(augment: str) -> None:
    """Fail fast on an auto-augment string timm cannot parse (raises ValueError naming it)."""
    if augment:
        try:
            plain = {"input_size": [3, 8, 8], "interpolation": "bilinear", "mean": [0.5] * 3, "std": [0.5] * 3}
            build_transforms(plain, True, augment)
        except Exception as error:
            raise ValueError(f"augment={augment!r} is not a timm auto-augment string ({error}): "
                             "use e.g. rand-m9-mstd0.5-inc1 (RandAugment) or '' for flips only") from None
