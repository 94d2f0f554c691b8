"""Data-parallel evaluation: two gloo ranks compute scores on their shards; the gathered rows (and so
mAP) equal a single process's, i.e. mAP is computed on the full validation set, not averaged per shard."""

import socket

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.utils.data import TensorDataset

from trainables.training.evaluation import evaluate_model
from trainables.training.runtime import Runtime

N, C = 11, 4  # 11 samples: the two shards differ in size


def _data():
    g = torch.Generator().manual_seed(0)
    images = torch.randn(N, 6, generator=g)
    labels = (torch.rand(N, C, generator=g) > 0.5).long().numpy().astype(np.int8)
    labels[0, 0] = -1  # an ignored (VOC difficult) entry
    return TensorDataset(images, torch.as_tensor(labels, dtype=torch.float32)), labels


def _model():
    torch.manual_seed(0)
    return torch.nn.Linear(6, C)


def _rank(rank: int, port: int, out) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        dataset, labels = _data()
        out[rank] = evaluate_model(_model(), dataset, labels, Runtime(rank=rank, world_size=2), batch_size=3)
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_single_process_metrics():
    dataset, labels = _data()
    single = evaluate_model(_model(), dataset, labels, Runtime(), batch_size=3)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with mp.Manager() as manager:
        out = manager.dict()
        mp.spawn(_rank, args=(port, out), nprocs=2, join=True)
        results = dict(out)
    for rank in (0, 1):
        assert results[rank].keys() == single.keys()
        for key, value in single.items():
            assert results[rank][key] == value or (np.isnan(value) and np.isnan(results[rank][key])), key
