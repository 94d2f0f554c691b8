"""TrialConfig: every knob of one IML-GCN run, flat and frozen, validated once.

Flat primitives cross process boundaries (Ray, MLflow params, YAML); the dataclass lives at each end,
so `TrialConfig(**config)` in a Ray worker rejects an unknown key at once.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

from trainables import embeddings
from trainables.seeds import MAX_SEED, in_range
from trainables.data.datasets import DATASETS

DIRECT_HEADS = ("keep", "reinit")
LOSSES = ("asl", "bce")
GRAPHS = ("paper", "mlgcn")
LR_SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
KEEP_CHECKPOINTS = ("front", "all", "none")
SYNTHETIC_LABELS = ("coco", "independent")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key and the fix."""


# What a config key affects, declared with the key (see `knob`); the caches' keys, the baseline, the
# report's columns and the comparison arms derive from these parts, so a new key cannot be left out.
DATA = "data"  # identifies the data set (the split index is stored once per these keys)
SYNTHETIC = "synthetic"  # a data key that exists only for dataset=synthetic
STAGE1 = "stage1"  # changes stage 1, the pretrained direct model and its features (stored once per these keys: the stage-1 key)
BASELINE = "baseline"  # changes stage 3's budget, which the same-budget direct model shares (one baseline per these keys)
HEAD = "head"  # a setting of the head that screening judges on cached features (the GCN's own are reset
#                for the direct model); a trial's head key in the report
SEARCH = "search"  # a study may search it: a column of the report and trials.csv
RUN = "run"  # how a run executes (workers, devices, files kept): every arm of a comparison shares these
PARTS = (DATA, SYNTHETIC, STAGE1, BASELINE, HEAD, SEARCH, RUN)


def knob(default: Any, *parts: str) -> Any:
    """A TrialConfig field with its default and the parts of a run it affects (one or more of PARTS)."""
    unknown = [part for part in parts if part not in PARTS]
    if not parts or unknown:
        raise ValueError(f"knob parts {parts}: give one or more of {', '.join(PARTS)}")
    return field(default=default, metadata={"parts": frozenset(parts)})


@dataclass(frozen=True)
class TrialConfig:
    """One run of the three stages (pretrain -> embed -> train). Defaults are the embedded demo."""

    # --- data
    dataset: str = knob("synthetic", DATA, STAGE1)  # synthetic (embedded) or a data set of trainables/data/datasets.py: coco, voc, ...
    data_dir: str = knob("", DATA, STAGE1)  # "" = the synthetic set in the cache folder (generated on first use)
    synthetic_classes: str = knob("default", DATA, SYNTHETIC, STAGE1)  # synthetic only: default (the documented rule) | all | COCO names, a,b,c
    synthetic_labels: str = knob("coco", DATA, SYNTHETIC, STAGE1)  # synthetic only: coco (COCO's label structure) | independent (the control)
    data_seed: int = knob(0, DATA, SYNTHETIC, STAGE1)  # synthetic only: the seed of the data set (the training seed never changes the data)
    synthetic_train_images: int = knob(2000, DATA, SYNTHETIC, STAGE1)  # synthetic only: images drawn for the training split
    synthetic_val_images: int = knob(1000, DATA, SYNTHETIC, STAGE1)  # synthetic only: images drawn for the validation split (mAP is computed on it)
    image_size: int = knob(64, STAGE1, SEARCH)  # pixels, square; the synthetic set is drawn at this size too
    # --- backbone (any timm model name)
    backbone: str = knob("test_resnet", STAGE1, SEARCH)  # timm's tiny ResNet (0.37 M): the 2-core demo
    pretrained: bool = knob(False, STAGE1)  # timm/hub ImageNet weights (needs network access)
    pretrained_path: str = knob("", STAGE1)  # local backbone weights (.safetensors or a torch state dict); wins over pretrained
    augment: str = knob("", STAGE1)  # timm auto-augment for training, e.g. rand-m9-mstd0.5-inc1 (RandAugment); "" = flips only
    # --- node features and label graph
    embedding: str = knob("fpca", HEAD, SEARCH)  # node features (trainables/embeddings.py): none (direct model) | word | fi | fpca | ...
    pca_dim: int = knob(0, HEAD, SEARCH)  # H0's columns k for fpca (and random); 0 = number of classes (the paper's k = C)
    word_embeddings: str = knob("", HEAD)  # .npz with `classes` and `vectors`; "" = packaged GloVe (COCO/VOC names)
    gcn_hidden: int = knob(1024, HEAD)  # width of the first graph convolution
    tau: float = knob(0.1, HEAD, SEARCH)  # Eq. 3 threshold on P(j | i)
    p: float = knob(0.2, HEAD, SEARCH)  # Eq. 4 re-weighting: weight given to neighbours
    graph: str = knob("paper", HEAD)  # paper (Eq. 3-4) | mlgcn (ML-GCN's code: p = 0.25, +I, column sums)
    # --- loss
    loss: str = knob("asl", STAGE1)  # stages 1 and 3: asl (Asymmetric Loss, as ASL and the paper) | bce (binary cross-entropy, as ML-GCN)
    asl_gamma_neg: float = knob(4.0, STAGE1)  # ASL: focusing exponent of the negative labels; higher down-weights easy negatives more
    asl_gamma_pos: float = knob(0.0, STAGE1)  # ASL: focusing exponent of the positive labels; 0 = plain cross-entropy on positives
    asl_clip: float = knob(0.05, STAGE1)  # ASL: probability margin; a negative's probability is lowered by it, so negatives below it cost nothing (0 = off)
    asl_focal_grad: bool = knob(False, STAGE1)  # True: gradients through ASL's focusing weights (its authors hold them constant)
    # --- stage 1: direct model (backbone + linear head)
    pretrain_epochs: int = knob(5, STAGE1)  # stage 1: epochs of the direct model before the GCN; 0 only with pretrained weights
    pretrain_lr: float = knob(2e-3, STAGE1)  # stage 1: Adam learning rate of the backbone and linear head (cosine schedule)
    # --- stage 3: IML-GCN
    epochs: int = knob(3, BASELINE)  # 0 only with embedding=none: the stage-1 direct model is the result
    # Decision (measured, see README "Decisions"): 2 warm-up epochs raised every arm's mAP at the same budget
    head_warmup_epochs: int = knob(2, BASELINE)  # fine-tuning: epochs the new head first trains on cached features, backbone frozen
    direct_head: str = knob("keep", BASELINE)  # embedding=none: keep the stage-1 linear head | reinit (a new head, like the GCN's)
    backbone_lr: float = knob(2e-4, BASELINE, SEARCH)  # stage 3: the backbone's learning rate when it is fine-tuned (finetune_backbone=true)
    gcn_lr: float = knob(2e-3, BASELINE, HEAD, SEARCH)  # stage 3: the head's learning rate (the GCN, or the direct model's linear head)
    weight_decay: float = knob(1e-4, STAGE1, BASELINE)  # Adam's weight decay in stages 1 and 3
    lr_schedule: str = knob("cosine", BASELINE)  # stage 3: cosine | step | constant (stage 1 always uses cosine)
    lr_milestones: str = knob("10,20,30", BASELINE)  # step schedule: epochs where the lr is multiplied by 0.1
    batch_size: int = knob(64, STAGE1, BASELINE)  # global batch, split between the Ray Train workers
    finetune_backbone: bool = knob(True, BASELINE)  # False = fast mode: frozen backbone, cached features, GCN only
    # --- execution
    num_workers: int = knob(1, STAGE1, RUN)  # Ray Train workers (data parallel)
    cpus_per_worker: int = knob(0, RUN)  # 0 = share the cluster's CPUs between the workers that run at once
    use_gpu: bool = knob(False, RUN)  # one GPU per Ray Train worker
    precision: str = knob("auto", STAGE1, RUN)  # auto (GPU: bf16 if supported, else fp16 + grad scaler; CPU: fp32) | fp32 | bf16 | fp16
    channels_last: bool = knob(True, BASELINE, RUN)  # NHWC memory format on GPU (faster convolutions under mixed precision)
    loader_workers: int = knob(0, RUN)  # DataLoader processes per Ray Train worker
    train_in_trial: bool = knob(True, RUN)  # one-worker training runs in the Tune trial's own process; false = on a Ray Train worker actor
    seed: int = knob(0, STAGE1)  # the training seed: initialisation and batch order (data_seed draws the synthetic data)
    keep_checkpoints: str = knob("front", RUN)  # studies: keep the final model of front | all | none of the trials

    def __post_init__(self) -> None:
        _check_types(self)
        _check_choice("dataset", self.dataset, tuple(DATASETS))
        _check_choice("embedding", self.embedding, embeddings.NAMES)
        _check_choice("direct_head", self.direct_head, DIRECT_HEADS)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("graph", self.graph, GRAPHS)
        _check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("keep_checkpoints", self.keep_checkpoints, KEEP_CHECKPOINTS)
        try:
            self.milestones()
        except ValueError:
            raise ConfigError(f"lr_milestones={self.lr_milestones!r} is not a comma-separated list of "
                              "epochs: write e.g. lr_milestones=10,20,30") from None
        for key in ("tau", "p"):
            value = getattr(self, key)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"{key}={value} is out of range: use a value in [0, 1]")
        if self.epochs < (0 if self.embedding == "none" else 1):
            raise ConfigError(f"epochs={self.epochs} must be at least 1 (0 is allowed only with embedding=none)")
        if self.direct_only and self.direct_head == "reinit":
            raise ConfigError("direct_head=reinit with epochs=0 would evaluate an untrained head: set epochs >= 1, "
                              "or direct_head=keep to take the stage-1 direct model as it is")
        positive = ("image_size", "gcn_hidden", "batch_size", "num_workers",
                    "synthetic_train_images", "synthetic_val_images")
        for key in positive:
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)} must be at least 1")
        for key in ("pretrain_epochs", "head_warmup_epochs", "pca_dim", "cpus_per_worker", "loader_workers", "asl_gamma_neg", "asl_gamma_pos",
                    "asl_clip", "weight_decay"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}={getattr(self, key)} must not be negative")
        for key in ("seed", "data_seed"):  # numpy's seeds: np.random.seed refuses the rest in every Ray worker
            if not in_range(getattr(self, key)):
                raise ConfigError(f"{key}={getattr(self, key)} is out of range: use an integer in 0..{MAX_SEED}")
        for key in ("pretrain_lr", "backbone_lr", "gcn_lr"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}={getattr(self, key)} must be positive")
        _check_choice("synthetic_labels", self.synthetic_labels, SYNTHETIC_LABELS)
        if self.synthetic_classes not in ("default", "all"):
            self.synthetic_class_count()  # COCO names, checked now
        entry = embeddings.EMBEDDINGS[self.embedding]
        if entry.from_features and self.pretrain_epochs == 0 and not (self.pretrained or self.pretrained_path):
            raise ConfigError("pretrain_epochs=0 without pretrained weights gives random node features: "
                              "set pretrain_epochs >= 1, pretrained=true or pretrained_path=FILE")

    def check_backbone(self) -> None:
        """Fail fast on a backbone or augment string timm does not know (imports timm: not in __post_init__)."""
        import timm

        if not timm.is_model(self.backbone):
            near = timm.list_models(f"*{self.backbone.split('_')[0]}*")[:5]
            hint = f" (similar: {', '.join(near)})" if near else ""
            raise ConfigError(f"backbone={self.backbone!r} is not a timm model{hint}: "
                              "see timm.list_models()")
        from trainables.data.preprocess import check_augment

        try:
            check_augment(self.augment)
        except ValueError as error:
            raise ConfigError(str(error)) from None

    def check_data_dir(self) -> None:
        """A real data set needs its folder (checked when data is about to be read, so that a preset like
        paper-coco can be loaded without one, e.g. by `imlgcn params`)."""
        if self.dataset != "synthetic" and not self.data_dir:
            raise ConfigError(f"dataset={self.dataset} needs data_dir: add --set data_dir=PATH")

    def synthetic_class_count(self) -> int:
        """The number of classes of the synthetic set this config draws (names checked here too)."""
        from trainables.data.labelled_images import DataError
        from trainables.data.synthetic import class_set

        try:
            return len(class_set(self.synthetic_classes))
        except DataError as error:
            raise ConfigError(str(error)) from None

    def check_classes(self, num_classes: int) -> None:
        """Checks that need the data set: pca_dim against the number of classes."""
        if embeddings.EMBEDDINGS[self.embedding].takes_pca_dim and self.pca_dim > num_classes:
            raise ConfigError(f"pca_dim={self.pca_dim} exceeds the {num_classes} classes of the data set: "
                              f"use pca_dim <= {num_classes} (0 = {num_classes})")

    def pca_components(self, num_classes: int) -> int:
        """k of F_PCA: pca_dim, where 0 means the number of classes (the paper's k = C)."""
        return self.pca_dim or num_classes

    def worker_cpus(self, node_cpus: Sequence[int], concurrent_runs: int = 1) -> int:
        """CPUs (= torch threads) of each Ray Train worker: cpus_per_worker, where 0 shares the cluster's
        CPUs between the workers of the runs that train at once: the most CPUs c such that the nodes
        (`node_cpus`, a worker cannot span two) hold num_workers x concurrent_runs workers of c CPUs."""
        if self.cpus_per_worker:
            return self.cpus_per_worker
        needed = self.num_workers * max(1, concurrent_runs)
        for cpus in range(max(node_cpus, default=1), 1, -1):
            if sum(n // cpus for n in node_cpus) >= needed:
                return cpus
        return 1

    @property
    def direct_only(self) -> bool:
        """embedding=none with epochs=0: the stage-1 direct model is the result (ASL's Table 1 row)."""
        return self.embedding == "none" and self.epochs == 0

    def notes(self) -> list[str]:
        """Settings that are valid but do something a user may not expect, one line each (the CLI prints
        them): e.g. a preset's step schedule run for fewer epochs than its first milestone never decays."""
        found = []
        past = [m for m in self.milestones() if m >= self.epochs]
        if self.lr_schedule == "step" and self.epochs and past:
            never = "never decays" if len(past) == len(self.milestones()) else "does not decay there"
            found.append(f"lr_milestones={self.lr_milestones}: {','.join(map(str, past))} lie at or past the last "
                         f"epoch (epochs={self.epochs}), so the learning rate {never}")
        return found

    def milestones(self) -> list[int]:
        """Epochs of the step schedule, e.g. '10,20,30' -> [10, 20, 30]."""
        return [int(x) for x in self.lr_milestones.split(",") if x.strip()]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        """Build from untyped values (YAML, --set strings, MLflow params); unknown keys are errors."""
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], known, n=3, cutoff=0.6)
            hint = f"did you mean {' or '.join(close)}? " if close else ""
            raise ConfigError(f"unknown config key {unknown[0]!r}: {hint}see `imlgcn config` for every key "
                              "with its default and meaning")
        return cls(**{k: _coerce(k, v, known[k].type) for k, v in values.items()})


def keys_of(part: str) -> tuple[str, ...]:
    """The TrialConfig keys declared to affect `part` (one of PARTS), in declaration order."""
    if part not in PARTS:
        raise ValueError(f"part {part!r}: use one of {', '.join(PARTS)}")
    return tuple(f.name for f in fields(TrialConfig) if part in f.metadata["parts"])


def _coerce(key: str, value: Any, type_name: str) -> Any:
    """Turn a YAML/CLI value into the field's type, with a message naming the key."""
    try:
        if type_name == "bool":
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("true", "1", "yes", "on"):
                return True
            if text in ("false", "0", "no", "off"):
                return False
            raise ValueError(value)
        if type_name == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(float(value)) if isinstance(value, str) and "e" in value.lower() else int(value)
        if type_name == "float":
            return float(value)
        return "" if value is None else str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key}={value!r} is not a valid {type_name}") from None


def _check_types(config: TrialConfig) -> None:
    for f in fields(config):
        value = getattr(config, f.name)
        ok = {"bool": isinstance(value, bool), "str": isinstance(value, str),
              "int": isinstance(value, int) and not isinstance(value, bool),
              "float": isinstance(value, (int, float)) and not isinstance(value, bool)}[f.type]
        if not ok:
            raise ConfigError(f"{f.name}={value!r} is not a valid {f.type}")


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not one of {' | '.join(choices)}")
