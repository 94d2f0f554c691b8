"""Stage 3 of IML-GCN, the paper's protocol: the backbone (from stage 1) and the head train jointly on
the images. With head_warmup_epochs, the new head first trains alone on the cached stage-1 features
(`head.train_head`, the backbone untouched), then the backbone is unfrozen: the same warm-up for every
arm of a comparison. The backbone learns at backbone_lr, the head at gcn_lr.

The other stage-3 algorithm, the head alone on cached features (finetune_backbone=false), is
`head.train_head` itself; `stages` chooses between them.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from trainables.config import TrialConfig
from trainables.training.epochs import Log, fit, lr_scheduler, model_label, restored_state, train_epoch, train_loader
from trainables.training.evaluation import evaluate_model
from trainables.stages.gcn_inputs import GCNInputs
from trainables.stages.head import head_model, head_parameters, train_head
from trainables.training.losses import build_loss
from trainables.training.runtime import Runtime
from trainables.models.sizes import model_sizes
from trainables.training.splits import Splits

Trained = tuple[dict[str, float], nn.Module]


def finetune(config: TrialConfig, backbone_state: dict, inputs: GCNInputs, splits: Splits, runtime: Runtime,
             log: Log, direct_mAP: float = math.nan) -> Trained:
    """Train backbone + head jointly for config.epochs on the images (augmented training transform),
    after head_warmup_epochs of the head alone on the cached features."""
    torch.manual_seed(config.seed)
    with runtime.timed("model"):
        model = head_model(config, inputs, backbone_state).to(runtime.device)
    if config.head_warmup_epochs and config.epochs and restored_state(runtime, "train") is None:
        began = time.perf_counter()
        with runtime.timed("warmup"):
            warm = train_head(config, model, inputs, runtime, log, config.head_warmup_epochs, "constant")
        log(f"[warm-up] {model_label(config)}: {config.head_warmup_epochs} epochs of the head alone on cached "
            "features (constant lr): "
            f"val mAP {warm['mAP']:.2f} ({time.perf_counter() - began:.1f} s)")
    wrapped = runtime.wrap(model)
    optimizer = torch.optim.Adam([{"params": head_parameters(model), "lr": config.gcn_lr},
                                  {"params": list(model.backbone.parameters()), "lr": config.backbone_lr}],
                                 weight_decay=config.weight_decay)
    loss_fn = build_loss(config.loss, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip, config.asl_focal_grad)
    loader, sampler = train_loader(splits.train_set, config, runtime)
    scaler = runtime.grad_scaler()

    def run_epoch(epoch: int) -> float:
        sampler.set_epoch(epoch)
        wrapped.train()
        return train_epoch(wrapped, loader, loss_fn, optimizer, runtime, scaler)

    def evaluate() -> dict[str, float]:
        return evaluate_model(model, splits.val_set, splits.val.labels, runtime, config.batch_size,
                              config.loader_workers)

    scheduler = lr_scheduler(config, optimizer, config.epochs)
    return fit(config, model, optimizer, scheduler, run_epoch, evaluate, model_sizes(model, config), direct_mAP,
               runtime, log), model


def train_head_only(config: TrialConfig, inputs: GCNInputs, runtime: Runtime, log: Log,
                    direct_mAP: float = math.nan) -> Trained:
    """finetune_backbone=false: the head alone on the cached features for config.epochs, as a run
    (per-epoch reports and checkpoints); no backbone is built, the saved model refers to stage 1's."""
    model = head_model(config, inputs).to(runtime.device)
    return train_head(config, model, inputs, runtime, log, config.epochs, config.lr_schedule, reports=True,
                      direct_mAP=direct_mAP), model
