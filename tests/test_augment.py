"""Augmentation that cannot crash on a valid image: every augment string a shipped preset uses, applied to
enough images that a 0.1 % failure rate would show (5,000: P(no failure | 0.1 %) = 0.7 %)."""

import random

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from study.driver.config import preset_names, preset_values
from trainables.data.preprocess import _augment_ops, build_transforms, data_config, posterize

APPLICATIONS = 5000


def shipped_augment_strings() -> list[str]:
    return sorted({preset_values(name).get("augment", "") for name in preset_names()} - {""})


def test_presets_ship_randaugment():
    assert "rand-m9-mstd0.5-inc1" in shipped_augment_strings()


@pytest.mark.parametrize("augment", shipped_augment_strings())
def test_shipped_augment_never_fails(augment):
    """timm 1.0.31 asks PosterizeIncreasing for 0 bits at magnitude 10, which Pillow 13 refuses: about 1 in
    1,000 images failed before (3-4 in 3,000 applications)."""
    transform = build_transforms(data_config("test_resnet", 32), training=True, augment=augment)
    random.seed(0)
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    pictures = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(50)]
    for n in range(APPLICATIONS):
        out = transform(pictures[n % len(pictures)])
        assert out.shape == (3, 32, 32) and torch.isfinite(out).all()


def test_posterize_ops_replaced_and_levels_kept():
    """Only the op's function changes: the same ops, probabilities and magnitudes as timm's."""
    from timm.data import create_transform

    ours = build_transforms(data_config("test_resnet", 32), True, "rand-m9-mstd0.5-inc1").transforms[1]
    timms = create_transform(input_size=(3, 32, 32), is_training=True, auto_augment="rand-m9-mstd0.5-inc1")
    mine, theirs = list(_augment_ops(ours)), list(_augment_ops(timms))
    assert [(o.name, o.prob, o.magnitude, o.magnitude_std) for o in mine] == \
           [(o.name, o.prob, o.magnitude, o.magnitude_std) for o in theirs]
    assert [o.name for o in mine if o.aug_fn is posterize] == ["PosterizeIncreasing"]
    assert all(o.level_fn is t.level_fn for o, t in zip(mine, theirs))


def test_posterize_matches_pillow_and_defines_zero_bits():
    """Bits 1-8 as Pillow; 0 bits keeps no bit (TensorFlow's RandAugment, Pillow < 13): a black image."""
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
    for bits in range(1, 9):
        assert np.array_equal(np.asarray(posterize(image, bits)), np.asarray(ImageOps.posterize(image, bits)))
    assert np.asarray(posterize(image, 0)).max() == 0
    # hand-worked: 0b1011_0110 = 182 keeps 0b1010_0000 = 160 with 3 bits, 0b1000_0000 = 128 with 1 bit
    pixel = Image.new("RGB", (1, 1), (182, 182, 182))
    assert posterize(pixel, 3).getpixel((0, 0)) == (160, 160, 160)
    assert posterize(pixel, 1).getpixel((0, 0)) == (128, 128, 128)
