import math
import time

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from trainables.backbones import create_backbone
from trainables.models.model import (
    DirectModel,
    GraphConvolution,
    IMLGCN,
    build_model,
    count_parameters,
    model_parameter_count,
)

C = 5


def _graph(c: int = C, k: int = 7, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(c, c, generator=g)
    return a / a.sum(1, keepdim=True), torch.randn(c, k, generator=g)


def _imlgcn(hidden: int = 16) -> IMLGCN:
    torch.manual_seed(0)
    adjacency, features = _graph()
    return IMLGCN(create_backbone("test_resnet"), adjacency, features, hidden=hidden)


def test_graph_convolution_matches_hand_computation():
    layer = GraphConvolution(2, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, 2.0], [0.0, -1.0]]))
    adjacency = torch.tensor([[0.5, 0.5], [0.0, 1.0]])
    h = torch.tensor([[1.0, 3.0], [2.0, -1.0]])
    # h @ W = [[1, -1], [2, 5]];  A @ that = [[1.5, 2], [2, 5]]
    expected = torch.tensor([[1.5, 2.0], [2.0, 5.0]])
    assert torch.allclose(layer(h, adjacency), expected)
    assert layer.bias is None


def test_graph_convolution_init_range_uses_output_size():
    torch.manual_seed(0)
    layer = GraphConvolution(300, 64)
    bound = 1 / math.sqrt(64)
    assert layer.weight.shape == (300, 64)
    assert layer.weight.abs().max() <= bound
    assert layer.weight.abs().max() > 0.9 * bound  # spans the range, not a narrower fan-in init


def test_imlgcn_shapes_logits_and_buffers():
    model = _imlgcn().eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(images)
        f = model.forward_features(images)
        w = model.classifiers()
    d = model.backbone.num_features
    assert f.shape == (3, d) and w.shape == (C, d) and logits.shape == (3, C)
    assert torch.allclose(logits, f @ w.T, atol=1e-5)
    assert torch.allclose(model.logits_from_features(f).detach(), logits, atol=1e-5)

    names = {n for n, _ in model.named_parameters()}
    assert not {"adjacency", "node_features"} & names
    assert {"gc1.weight", "gc2.weight"} <= names
    assert {n for n in names if not n.startswith("backbone.")} == {"gc1.weight", "gc2.weight"}
    state = model.state_dict()
    assert state["adjacency"].dtype == torch.float32 and state["node_features"].shape == (C, 7)


def test_imlgcn_gradients_reach_backbone_and_gcn():
    model = _imlgcn().train()
    model(torch.randn(2, 3, 32, 32)).sum().backward()
    for name in ("gc1.weight", "gc2.weight"):
        assert model.get_parameter(name).grad.abs().sum() > 0
    backbone_grads = [p.grad for p in model.backbone.parameters()]
    assert all(g is not None for g in backbone_grads) and sum(g.abs().sum() for g in backbone_grads) > 0
    assert model.adjacency.grad is None


def test_imlgcn_state_dict_round_trip_and_numpy_inputs():
    adjacency, features = _graph()
    model = IMLGCN(create_backbone("test_resnet"), adjacency.numpy().astype(np.float64), features.numpy(),
                   hidden=8)
    assert model.adjacency.dtype == torch.float32
    other = IMLGCN(create_backbone("test_resnet"), torch.zeros(C, C), torch.zeros(C, 7), hidden=8)
    other.load_state_dict(model.state_dict())
    assert torch.equal(other.adjacency, model.adjacency)
    assert torch.equal(other.node_features, model.node_features)


def test_direct_model_interface():
    model = build_model("test_resnet", C, "none").eval()
    assert isinstance(model, DirectModel)
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model.logits_from_features(model.forward_features(images)), model(images))
    assert model(images).shape == (2, C)


@pytest.mark.parametrize("backbone", ["mobilenetv3_small_050", "lcnet_050"])
def test_a_backbone_with_a_pre_logits_layer_gets_a_head_of_its_pooled_size(backbone):
    """MobileNetV3 and LCNet return head_hidden_size features (a 1x1 conv after pooling), not num_features:
    d is what the headless backbone returns, and counting agrees with the built model."""
    for embedding in ("none", "fi"):
        nodes, graph = (None, None) if embedding == "none" else (torch.randn(C, 8), torch.eye(C))
        model = build_model(backbone, C, embedding, node_features=nodes, adjacency=graph, hidden=16).eval()
        with torch.no_grad():
            assert model(torch.randn(2, 3, 32, 32)).shape == (2, C)
    d = create_backbone(backbone).eval()(torch.randn(1, 3, 32, 32)).shape[1]
    assert count_parameters(backbone, C, "none")["head"] == d * C + C


def test_build_model_validates_graph_inputs():
    adjacency, features = _graph()
    assert isinstance(build_model("test_resnet", C, "fi", features, adjacency, hidden=8), IMLGCN)
    with pytest.raises(ValueError, match="needs node_features"):
        build_model("test_resnet", C, "fpca")
    with pytest.raises(ValueError, match="adjacency must be C x C"):
        build_model("test_resnet", C + 1, "word", features, adjacency)
    with pytest.raises(ValueError, match="node_features must be C x k"):
        build_model("test_resnet", C, "word", features[:3], adjacency)
    with pytest.raises(ValueError, match="embedding must be one of"):
        build_model("test_resnet", C, "glove", features, adjacency)


@pytest.mark.parametrize("embedding, in_dim", [("none", None), ("word", None), ("fi", None), ("fpca", 4)])
def test_count_parameters_agrees_with_built_model(embedding, in_dim):
    adjacency, _ = _graph()
    d = timm.create_model("resnet18", num_classes=0).num_features
    k = {"word": 300, "fi": d, "fpca": 4}.get(embedding, 3)
    model = build_model("resnet18", C, embedding, torch.zeros(C, k), adjacency, hidden=32)
    counts = count_parameters("resnet18", C, embedding, in_dim=in_dim, hidden=32)
    assert counts["total"] == model_parameter_count(model) == counts["backbone"] + counts["head"]
    assert counts["backbone"] == model_parameter_count(model.backbone)


def test_count_parameters_requires_k_for_fpca():
    with pytest.raises(ValueError, match="fpca"):
        count_parameters("test_resnet", C, "fpca")
    with pytest.raises(ValueError, match="in_dim = d"):
        count_parameters("test_resnet", C, "fi", in_dim=3)


@pytest.mark.parametrize(
    "backbone, embedding, in_dim, total, paper_m",
    [
        ("tresnet_m", "none", None, 29_340_032 + 2048 * 80 + 80, 29.5),  # ASL TResNet-M
        ("tresnet_l", "none", None, 53_556_256 + 2432 * 80 + 80, 53.8),  # ASL TResNet-L
        ("resnet101", "word", 300, 42_500_160 + 300 * 1024 + 1024 * 2048, 44.9),  # ML-GCN
        ("tresnet_m", "fi", None, 29_340_032 + 2048 * 1024 + 1024 * 2048, 33.5),  # IML-GCN F_I
        ("tresnet_m", "fpca", 80, 29_340_032 + 80 * 1024 + 1024 * 2048, 31.5),  # IML-GCN F_PCA
    ],
)
def test_count_parameters_reproduces_paper_table_1(backbone, embedding, in_dim, total, paper_m):
    start = time.perf_counter()
    counts = count_parameters(backbone, 80, embedding, in_dim=in_dim)
    assert time.perf_counter() - start < 10
    assert counts["total"] == total
    assert round(counts["total"] / 1e6, 1) == paper_m


def test_table_1_literal_values():
    assert count_parameters("tresnet_m", 80, "none")["total"] == 29_503_952
    assert count_parameters("tresnet_l", 80, "none")["total"] == 53_750_896
    assert count_parameters("resnet101", 80, "word")["total"] == 44_904_512
    assert count_parameters("tresnet_m", 80, "fi")["total"] == 33_534_336
    assert count_parameters("tresnet_m", 80, "fpca", in_dim=80)["total"] == 31_519_104


def test_meta_device_count_equals_real_build():
    real = sum(p.numel() for p in timm.create_model("tresnet_m", num_classes=0).parameters())
    assert count_parameters("tresnet_m", 80, "none")["backbone"] == real == 29_340_032


def _saved_backbone(tmp_path, suffix: str, name: str = "test_resnet", wrap: str = ""):
    torch.manual_seed(1)
    source = timm.create_model(name, num_classes=10)  # a full model: its fc must be dropped on load
    state = source.state_dict()
    path = tmp_path / f"weights{suffix}"
    if suffix == ".safetensors":
        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save({wrap: state} if wrap else state, path)
    return source, path


@pytest.mark.parametrize("suffix, wrap", [(".pt", ""), (".pth", "state_dict"), (".pt", "model"),
                                          (".safetensors", "")])
def test_pretrained_path_loads_local_weights(tmp_path, suffix, wrap):
    source, path = _saved_backbone(tmp_path, suffix, wrap=wrap)
    loaded = create_backbone("test_resnet", pretrained_path=str(path))
    expected = {k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}
    got = loaded.state_dict()
    assert got.keys() == expected.keys()
    assert all(torch.equal(got[k], expected[k]) for k in expected)


def test_pretrained_path_accepts_a_saved_direct_model(tmp_path):
    direct = build_model("test_resnet", C, "none")
    torch.save(direct.state_dict(), tmp_path / "stage1.pt")
    adjacency, features = _graph()
    model = build_model("test_resnet", C, "fpca", features, adjacency, hidden=8,
                        pretrained_path=str(tmp_path / "stage1.pt"))
    assert all(torch.equal(a, b) for a, b in zip(model.backbone.state_dict().values(),
                                                 direct.backbone.state_dict().values()))


def test_pretrained_path_from_other_architecture_is_a_clear_error(tmp_path):
    _, path = _saved_backbone(tmp_path, ".pt", name="resnet18")
    with pytest.raises(ValueError, match=r"weights in .*weights\.pt.* do not fit .*mismatched") as info:
        create_backbone("test_resnet", pretrained_path=str(path))
    assert "\n" not in str(info.value)


def test_pretrained_path_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="nope.pt.*does not exist"):
        create_backbone("test_resnet", pretrained_path=str(tmp_path / "nope.pt"))


def test_pretrained_path_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"x": object()}}, path)
    with pytest.raises(ValueError, match="cannot read weights"):
        create_backbone("test_resnet", pretrained_path=str(path))


def test_folded_model_gives_the_same_scores_with_fewer_parameters():
    """IML-GCN's classifiers are constant at inference: backbone + a bias-free C x d linear head."""
    from trainables.models.model import fold

    torch.manual_seed(0)
    model = _imlgcn(hidden=16).eval()
    images = torch.randn(4, 3, 32, 32)
    folded = fold(model)
    assert isinstance(folded, DirectModel) and folded.head.bias is None and folded.backbone is model.backbone
    with torch.no_grad():
        assert torch.allclose(folded(images), model(images), atol=1e-5)
    d = model.backbone.num_features
    assert model_parameter_count(folded) == model_parameter_count(model.backbone) + C * d
    counts = count_parameters("test_resnet", C, "fpca", in_dim=7, hidden=16)
    assert counts["inference"] == model_parameter_count(folded) and counts["total"] == model_parameter_count(model)
    direct = DirectModel(create_backbone("test_resnet"), C)
    assert fold(direct) is direct


def test_control_node_features():
    from trainables.models.label_graph import centred_embeddings, random_embeddings

    fi = np.array([[1.0, 2.0], [3.0, 6.0]])
    np.testing.assert_allclose(centred_embeddings(fi), [[-1.0, -2.0], [1.0, 2.0]])  # F_I minus its mean row
    a, b = random_embeddings(5, 3, seed=1), random_embeddings(5, 3, seed=1)
    assert a.shape == (5, 3) and a.dtype == np.float32 and np.array_equal(a, b)  # fixed by the seed
    assert not np.array_equal(a, random_embeddings(5, 3, seed=2))
