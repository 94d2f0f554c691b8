"""`imlgcn params`: a model's sizes without data or weights: the paper's parameter count (Table 1, GCN
included), the deployed (folded) model's parameters and its GFLOPs per image, all exact (built on the meta
device, so nothing is downloaded or allocated); for a size-plane space, the same for each of its points."""

from __future__ import annotations

import argparse
import dataclasses

from trainables.config import ConfigError, TrialConfig
from trainables.data.datasets import get_dataset
from trainables.embeddings import embedding as embedding_entry

# The paper's Table 1 (COCO) parameter counts of the models the presets reproduce, in millions
PAPER_TABLE1_M = {"paper-coco": 31.5, "mlgcn-coco": 44.9, "asl-coco": 29.5}


def params(args: argparse.Namespace) -> dict:
    """The sizes of the preset/config (or of --backbone/--embedding/--num-classes), or of every point of --space."""
    from trainables.models.model import count_parameters

    if args.backbone is None and args.embedding is None:
        from study.driver.config import load_trial_config

        config = load_trial_config(args.preset or "demo", args.config, args.assignments)
        classes = args.num_classes or (config.synthetic_class_count() if config.dataset == "synthetic"
                                       else get_dataset(config.dataset).num_classes)
        if classes is None:
            raise ConfigError(f"dataset={config.dataset} has no fixed number of classes: add --num-classes C")
        embedding, pca_dim = config.embedding, config.pca_components(classes)
        hidden, word_dim = config.gcn_hidden, args.word_dim
    else:
        missing = [f"--{n.replace('_', '-')}" for n in ("backbone", "num_classes", "embedding") if getattr(args, n) is None]
        if missing:
            raise ConfigError(f"params needs {', '.join(missing)} (or --preset NAME)")
        classes, embedding = args.num_classes, args.embedding
        config = TrialConfig(backbone=args.backbone, embedding=embedding, pca_dim=args.pca_dim or 0)
        config.check_backbone()
        pca_dim, hidden, word_dim = config.pca_components(classes), args.hidden, args.word_dim
    entry = embedding_entry(embedding)
    in_dim = entry.input_width(d=None, k=pca_dim, word_dim=word_dim)  # d: count_parameters reads the backbone's
    if entry.takes_pca_dim and not 1 <= pca_dim <= classes:
        raise ConfigError(f"--pca-dim {pca_dim} must be in 1..{classes} (the number of classes)")

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
            **({"paper_table1_M": PAPER_TABLE1_M[args.preset]} if args.preset in PAPER_TABLE1_M else {})}


def deployed_flops(backbone: str, classes: int, embedding: str, image_size: int) -> dict:
    """GFLOPs of one image through the folded (deployed) model, counted on the meta device: no weights
    are downloaded or allocated, so it is exact for any timm backbone on any machine."""
    from trainables.models.sizes import count_flops, deployed_model

    model = deployed_model(backbone, classes, bias=embedding == "none", meta=True)
    return {"image_size": image_size, "gflops": round(count_flops(model, image_size) / 1e9, 3)}
