"""Sizes that hold at deployment (trainables.models.sizes): FLOPs against a hand count, the folded model's
measures for an IML-GCN model and its direct model, latency timed with its device named."""

import pytest
import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.size_measures import DEVICE_KEY, SIZE_KEYS
from trainables.models.model import build_model, count_parameters, fold
from trainables.models.sizes import count_flops, deployed_sizes, model_sizes, time_forward


def test_flops_match_a_hand_count_of_a_conv_and_a_linear_layer():
    """Conv2d(3 -> 4, 3x3, padding 1) on 8 x 8: 4 * 8 * 8 outputs x 27 multiply-adds x 2 = 13,824;
    Linear(256 -> 5): 256 * 5 multiply-adds x 2 = 2,560; biases and the flatten are not counted."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    assert count_flops(model, 8) == 13_824 + 2_560
    with torch.device("meta"):  # the same count without weights in memory
        meta = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    assert count_flops(meta, 8) == 16_384


def test_an_imlgcn_model_and_its_folded_form_have_the_deployed_sizes():
    """n_params is the paper's count (GCN included); every other measure is the folded model's, so a
    GCN model and a direct model on one backbone deploy at the same size (the head bias aside)."""
    classes = 5
    config = TrialConfig(backbone="test_resnet", image_size=32, gcn_hidden=16)
    torch.manual_seed(0)
    gcn = build_model("test_resnet", classes, "fpca", node_features=torch.randn(classes, classes),
                      adjacency=torch.eye(classes), hidden=16)
    sizes = model_sizes(gcn, config)
    counted = count_parameters("test_resnet", classes, "fpca", in_dim=classes, hidden=16)
    assert sizes["n_params"] == counted["total"] and sizes["n_params_inference"] == counted["inference"]
    folded = fold(gcn).eval()
    assert sizes["n_params_inference"] == sum(p.numel() for p in folded.parameters())
    assert sizes["flops"] == count_flops(folded, 32)
    assert set(SIZE_KEYS) <= set(sizes) and sizes["latency_ms"] > 0 and sizes["images_per_s"] > 0
    assert sizes[DEVICE_KEY] == f"cpu ({torch.get_num_threads()} threads)"
    direct = model_sizes(build_model("test_resnet", classes, "none"), config)
    assert direct["n_params"] == direct["n_params_inference"] == sizes["n_params_inference"] + classes  # + bias
    assert direct["flops"] == sizes["flops"]  # the bias add is not a counted FLOP


def test_flops_grow_with_the_pixels_and_the_backbone():
    small = deployed_sizes("test_resnet", 32, 5, False, "cpu")["flops"]
    large = deployed_sizes("test_resnet", 64, 5, False, "cpu")["flops"]
    assert 3.5 < large / small <= 4.0  # convolutions scale with the pixels; the head does not
    assert deployed_sizes("resnet10t", 64, 5, False, "cpu")["flops"] > 4 * large


def test_time_forward_is_the_median_of_at_least_the_minimum_runs():
    calls = []

    class Counting(nn.Module):
        def forward(self, x):
            calls.append(1)
            return x

    seconds = time_forward(Counting(), torch.zeros(1), runs=(4, 4), budget_s=0.0)
    assert len(calls) == 3 + 4 and seconds >= 0  # 3 warm-up calls, then exactly 4 timed


def test_timing_the_deployed_model_leaves_the_random_state_alone():
    """deployed_sizes is cached per process: if it drew its random weights and images from the global
    generator, a run's later shuffling would depend on whether its process had timed that model before
    (the same seed gave two mAPs in one process)."""
    deployed_sizes.cache_clear()
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    deployed_sizes("test_resnet", 32, 5, False, "cpu")
    assert torch.equal(torch.rand(3), expected)
