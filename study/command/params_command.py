"""`imlgcn params`: a model's sizes without data or weights: the paper's parameter count (Table 1, GCN
included), the deployed (folded) model's parameters and its GFLOPs per image, all exact (built on the meta
device, so nothing is downloaded or allocated); for a size-plane space, the same for each of its points."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Callable

from trainables.config import ConfigError, TrialConfig
from trainables.data.datasets import get_dataset
from trainables.embeddings import WORD_DIM, embedding as embedding_entry

# The paper's Table 1 (COCO) parameter counts of the models the presets reproduce, in millions
PAPER_TABLE1_M = {"paper-coco": 31.5, "mlgcn-coco": 44.9, "asl-coco": 29.5}


def params(args: argparse.Namespace, progress: Callable[[str], None] = lambda _: None) -> dict:
    """The sizes of the preset/config (or of --backbone/--embedding/--num-classes), or of every point of --space.

    With a preset or a config file, --backbone, --embedding and --pca-dim override its keys, as
    `--set backbone=...` would: the options a user types win over the file they start from."""
    from trainables.models.model import count_parameters

    _check_counts(args)
    if (args.backbone is None and args.embedding is None) or args.preset or args.config or args.assignments:
        from study.driver.config import load_trial_config

        options = {key: value for key, value in (("backbone", args.backbone), ("embedding", args.embedding),
                                                 ("pca_dim", args.pca_dim), ("gcn_hidden", args.hidden))
                   if value is not None}
        overrides = [f"{key}={value}" for key, value in options.items()]
        config = load_trial_config(args.preset or "demo", args.config, [*args.assignments, *overrides])
        classes = args.num_classes or _classes_of(config)
        hidden, word_dim = config.gcn_hidden, args.word_dim
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("backbone", "num_classes", "embedding") if getattr(args, n) is None]
        if missing:
            raise ConfigError(f"params needs {', '.join(missing)} (or --preset NAME)")
        config = TrialConfig(backbone=args.backbone, embedding=args.embedding, pca_dim=args.pca_dim or 0)
        config.check_backbone()
        classes, hidden, word_dim = args.num_classes, args.hidden or config.gcn_hidden, args.word_dim
    _check_pca_dim(config, classes, args)
    embedding, pca_dim = config.embedding, config.pca_components(classes)
    in_dim = embedding_entry(embedding).input_width(d=None, k=pca_dim, word_dim=word_dim)  # d: count_parameters reads the backbone's

    def sizes(backbone: str, image_size: int) -> dict:
        counts = count_parameters(backbone, classes, embedding, in_dim=in_dim, hidden=hidden)
        return {**counts, **deployed_flops(backbone, classes, embedding, image_size)}

    if args.space:
        from search_spaces import get_space
        from study.levels.references import plane_points, point_name

        plane = get_space(args.space).plane
        if not plane:
            raise ConfigError(f"--space {args.space} searches no backbones or resolutions: use a size-plane space "
                              "(sizes, paper-coco-sizes)")
        points = [dataclasses.replace(config, **point) for point in plane_points(plane)]
        for point in points:
            point.check_backbone()
        return {"space": args.space, "embedding": embedding, "num_classes": classes,
                "points": [{"model": point_name(p), **sizes(p.backbone, p.image_size)} for p in points]}
    return {**sizes(config.backbone, args.image_size or config.image_size),
            **_paper_count(args, (config.backbone, embedding, in_dim, hidden, classes), progress)}


def _check_counts(args: argparse.Namespace) -> None:
    """Each number the options give, named by its option: a negative --num-classes is not --pca-dim's fault."""
    for option, value, least in (("--num-classes", args.num_classes, 1), ("--pca-dim", args.pca_dim, 0),
                                 ("--word-dim", args.word_dim, 1), ("--hidden", args.hidden, 1),
                                 ("--image-size", args.image_size, 1)):
        if value is not None and value < least:
            zero = " (0 = the number of classes)" if option == "--pca-dim" else ""
            raise ConfigError(f"{option} {value}: use at least {least}{zero}")


def _classes_of(config: TrialConfig) -> int:
    """The number of classes of the config's data set, for a count without --num-classes."""
    classes = (config.synthetic_class_count() if config.dataset == "synthetic"
               else get_dataset(config.dataset).num_classes)
    if classes is None:
        raise ConfigError(f"dataset={config.dataset} has no fixed number of classes: add --num-classes C")
    return classes


def _check_pca_dim(config: TrialConfig, classes: int, args: argparse.Namespace) -> None:
    """The check training makes (a pca_dim above the number of classes fails), naming --pca-dim when it was typed."""
    try:
        config.check_classes(classes)
    except ConfigError:
        if args.pca_dim is None:
            raise
        source = "--num-classes" if args.num_classes else f"dataset={config.dataset}"
        raise ConfigError(f"--pca-dim {args.pca_dim} exceeds the {classes} classes ({source}): use --pca-dim <= "
                          f"{classes} (0 = {classes})") from None


def _paper_count(args: argparse.Namespace, model: tuple, progress: Callable[[str], None]) -> dict:
    """The paper's Table 1 count of the preset, where the counted model is the preset's own; beside another
    backbone, head or class count it would read as that model's, so a note says why it is left out."""
    if args.preset not in PAPER_TABLE1_M:
        return {}
    from study.driver.config import load_trial_config

    own = load_trial_config(args.preset)
    classes = _classes_of(own)
    width = embedding_entry(own.embedding).input_width(d=None, k=own.pca_components(classes), word_dim=WORD_DIM)
    if model == (own.backbone, own.embedding, width, own.gcn_hidden, classes):
        return {"paper_table1_M": PAPER_TABLE1_M[args.preset]}
    progress(f"note: the paper's count for {args.preset} ({PAPER_TABLE1_M[args.preset]} M) is of its own model "
             f"(backbone={own.backbone}, embedding={own.embedding}, {classes} classes): left out for this one")
    return {}


def deployed_flops(backbone: str, classes: int, embedding: str, image_size: int) -> dict:
    """GFLOPs of one image through the folded (deployed) model, counted on the meta device: no weights
    are downloaded or allocated, so it is exact for any timm backbone on any machine."""
    from trainables.models.sizes import count_flops, deployed_model

    model = deployed_model(backbone, classes, bias=embedding == "none", meta=True)
    return {"image_size": image_size, "gflops": round(count_flops(model, image_size) / 1e9, 3)}
