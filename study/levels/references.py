"""A study's reference runs, trained once per key before any trial starts: stage 1 (the pretrained
direct model whose backbone every trial starts from) and the same-budget baselines (that direct model
continued for exactly the trials' stage-3 budget: with its backbone for the fine-tuning level, on the
cached features for the screening level), which every trial's `direct_mAP` refers to and the report
draws. One MLflow run each (tags stage=pretrain / stage=baseline + level), under the study's parent run.

A space with a size plane (`search_spaces.SearchSpace.plane`) has one stage 1 and one set of baselines per
point, (backbone, resolution): they train at the same time, as many as the cluster holds, before any trial.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, Callable

from study.driver.record import StudyRecord
from trainables.stages.baseline import baseline_config, baseline_key, load_baseline
from trainables.config import TrialConfig
from trainables.trial.mlflow_runs import FAILED, FINAL_KEYS, RUNNING, RunLog, final_tags, store
from trainables.stages.stage_cache import STAGE1_FIELDS, load_stage1, stage1_key


def plane_points(plane: dict[str, tuple]) -> list[dict[str, Any]]:
    """Every combination of a space's plane ({"backbone": b, "image_size": s}, ...), or [{}] (the base
    config's settings) for a space without one."""
    return [dict(zip(plane, values)) for values in itertools.product(*plane.values())] if plane else [{}]


def study_points(record: StudyRecord) -> list[dict[str, Any]]:
    """The study's stage-1 settings: the points of its space's plane."""
    from search_spaces import get_space

    return plane_points(get_space(record.space).plane)


def point_configs(record: StudyRecord, level: str) -> list[TrialConfig]:
    """The baseline config of `level` at each point of the study's plane."""
    return [baseline_config(TrialConfig(**{**record.level_config(level), **point})) for point in study_points(record)]


def point_name(config: TrialConfig) -> str:
    """'test_resnet@64px' (study.reports.plane.model_name of the config's point)."""
    from study.reports.plane import model_name

    return model_name(config.backbone, config.image_size)


def reference_configs(record: StudyRecord, point: dict[str, Any]) -> dict[str, TrialConfig]:
    """The baseline config of each level the study runs at one point: `finetune` always, `screen` when it screens."""
    levels = {run["level"] for run in record.tune_runs.values()} | {"finetune"}
    return {level: baseline_config(TrialConfig(**{**record.level_config(level), **point})) for level in sorted(levels)}


@dataclasses.dataclass
class _Point:
    """One point's references: its stage-1 config and key, baseline configs and keys by level, new MLflow runs."""
    config: TrialConfig
    key: str
    references: dict[str, TrialConfig]
    keys: dict[str, str]
    opened: dict[str, str]


def ensure_references(record: StudyRecord, node_cpus: list[int], progress: Callable[[str], None]) -> None:
    """Stage 1 and the baselines of every point of the study's plane unless cached, each with its finished
    MLflow run: the missing ones train together, as many at once as the nodes hold (one point alone gets
    every CPU a worker can use)."""
    runs = store(record.tracking_uri)
    base = TrialConfig(**record.base_config)
    points, trainings = [], {}
    plane = study_points(record)
    for point in plane:
        config = dataclasses.replace(base, **point)
        references = reference_configs(record, point)
        keys = {level: baseline_key(direct) for level, direct in references.items()}
        key = stage1_key(config)
        label = f"{point_name(config)}: " if point else ""
        stage1 = load_stage1(record.stage1_dir, key)
        pretrain_logged = _logged(runs, record, "pretrain_key", key)
        missing = [level for level, bkey in keys.items() if not _logged(runs, record, "baseline_key", bkey)]
        stored = {level: load_baseline(record.stage1_dir, bkey) for level, bkey in keys.items()}
        if stage1 is not None and pretrain_logged and not missing and all(stored.values()):
            progress(f"{label}stage 1 {key} and baseline {keys['finetune']} already done (direct model mAP "
                     f"{stage1.metrics['mAP']:.2f}, same-budget {stored['finetune']['mAP']:.2f})")
            continue
        opened = _open_runs(runs, record, config, key, keys, references, missing, pretrain_logged, len(plane) > 1)
        points.append(_Point(config, key, references, keys, opened))
        if stage1 is None or not all(stored.values()):
            if stage1 is None:
                progress(f"{label}stage 1 {key}: pretraining {config.backbone} for {config.pretrain_epochs} epochs")
            progress(f"{label}baseline {keys['finetune']}: the direct model for {config.epochs} more epochs, as "
                     "every trial trains")
            trainings[keys["finetune"]] = points[-1]
    try:
        if trainings:
            _train(record, _longest_first(trainings, record.num_classes), node_cpus)
        for point in points:
            stored = _close_runs(runs, record, point)
            label = f"{point_name(point.config)}: " if len(plane) > 1 else ""
            progress(f"{label}baseline {point.keys['finetune']}: the direct model continued for the trials' budget "
                     f"reaches mAP {stored['finetune']['mAP']:.2f}")
    except BaseException:
        for point in points:
            for run_id in point.opened.values():
                if runs.status(run_id) == RUNNING:
                    runs.close(run_id, FAILED)
        raise


def _longest_first(trainings: dict[str, _Point], num_classes: int) -> dict[str, _Point]:
    """The trainings by the time of one training step, longest first (Tune starts them in this order): the
    longest one starts at once instead of last, when the others are done and the CPUs they freed stay idle
    (seen on the sizes plane: resnet10t's 64 px stage 1 started fifth of six and ran 6 minutes on one core
    while the other waited). The step is timed here, not guessed: FLOPs rank MobileNetV3 cheapest of the
    plane, yet its depthwise convolutions make it the slowest on a CPU."""
    steps = {name: _step_seconds(point.config, num_classes) for name, point in trainings.items()}
    return dict(sorted(trainings.items(), key=lambda item: -steps[item[0]]))


def _step_seconds(config: TrialConfig, num_classes: int) -> float:
    """Seconds of one forward and backward pass of the point's direct model (random weights, 4 images at
    its resolution) on the driver's CPU, after one untimed pass."""
    import time

    import torch

    from trainables.models.model import build_model

    model = build_model(config.backbone, num_classes, "none")
    images = torch.randn(4, 3, config.image_size, config.image_size)
    model(images).sum().backward()
    began = time.perf_counter()
    model(images).sum().backward()
    return time.perf_counter() - began


def _train(record: StudyRecord, trainings: dict[str, _Point], node_cpus: list[int]) -> None:
    """The missing references as one Tune run (restored after a crash), each point on every CPU its share
    of the nodes gives: they train alone, before any trial."""
    from study.driver.trainings import run_trainings

    first = next(iter(trainings.values())).config
    at_once = min(len(trainings), max(1, sum(node_cpus) // first.num_workers))
    cpus = dataclasses.replace(first, cpus_per_worker=0).worker_cpus(node_cpus, at_once)
    run_trainings({name: (point.config, dataclasses.replace(record.context(cpus), stages="baseline",
                                                            run_id=point.opened.get("finetune", ""),
                                                            pretrain_run_id=point.opened.get("pretrain", "")))
                   for name, point in trainings.items()}, record.tune_dir, "references", at_once, restore=True)


def _logged(runs: RunLog, record: StudyRecord, tag: str, value: str) -> bool:
    query = f"tags.{tag} = '{value}' and attributes.status = 'FINISHED'"
    return bool(runs.search(record.experiment_id, query, max_results=1))


def _open_runs(runs: RunLog, record: StudyRecord, config: TrialConfig, key: str, keys: dict[str, str],
               references: dict[str, TrialConfig], missing: list[str], pretrain_logged: bool,
               named_by_point: bool) -> dict[str, str]:
    """MLflow runs for what has none yet: {"pretrain": id, level: id}."""
    parent = {"mlflow.parentRunId": record.parent_run_id}
    name = point_name(config) if named_by_point else config.backbone
    opened = {}
    if not pretrain_logged:
        opened["pretrain"] = runs.create(record.experiment_id, f"pretrain-{name}",
                                         {"stage": "pretrain", "pretrain_key": key, **parent},
                                         {k: getattr(config, k) for k in STAGE1_FIELDS})
    for level in missing:
        opened[level] = runs.create(
            record.experiment_id, f"baseline-{level}-{name}",
            {"stage": "baseline", "level": level, "baseline_key": keys[level], "pretrain_key": key, **parent},
            references[level].to_dict())
    return opened


def _close_runs(runs: RunLog, record: StudyRecord, point: _Point) -> dict[str, dict]:
    """Final metrics and FINISHED on the point's opened runs; returns its stored baselines by level."""
    stage1 = load_stage1(record.stage1_dir, point.key)
    stored = {level: load_baseline(record.stage1_dir, bkey) for level, bkey in point.keys.items()}
    for name, run_id in point.opened.items():  # each measured its sizes where it trained (trainables.models.sizes)
        values = stage1.metrics if name == "pretrain" else stored[name]
        runs.finish(run_id, {k: float(values[k]) for k in FINAL_KEYS if k in values},
                    step=0 if name == "pretrain" else point.references[name].epochs, tags=final_tags(values))
    return stored
