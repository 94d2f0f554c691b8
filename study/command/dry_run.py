"""`--dry-run` of `imlgcn train`, `study run` and `compare`: what the command would run, printed, and nothing run.

Before hours on a cluster a user wants to see the config the command will use (which value came from the
preset, the YAML file or --set), what a study searches, how many trials run, how large the data set and the
model are. The checks that only read run here as in the command itself (config, backbone, data folder and
annotation files, pca_dim against the classes, word vectors, trial counts, a name already taken, the arms);
none that writes (storage, the MLflow store, the synthetic set's cache, the split index). Ray does not start,
and neither a tracking server nor a Ray cluster is contacted: the command checks those when it runs.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, fields
from pathlib import Path

from study.command.parser import DEFAULT_PRESETS, build_parser
from study.driver.config import config_layers, load_trial_config
from trainables.config import ConfigError, TrialConfig

# The leaf parser's options the listing leaves out: the config's own (shown value by value) and the switches
SHOWN_ELSEWHERE = ("preset", "config", "assignments", "dry_run", "verbose", "help")


@dataclass(frozen=True)
class DataSize:
    """A data set's size as the run would read it: its class names and the images of each split."""

    where: str
    classes: tuple[str, ...]
    images: dict[str, int]


def dry_run(args: argparse.Namespace, argv: list[str]) -> str:
    """The merged config with each value's source, the command's options, its plan (searched keys, trials),
    the data set's size and the model's parameter counts, as text for the CLI to print; ConfigError or
    DataError where the command itself would stop before starting."""
    command = "study run" if args.command == "study" else args.command
    config, sources = sourced_config(args.preset, DEFAULT_PRESETS[command], args.config, args.assignments)
    data = data_size(config)
    _check_against_data(config, data)
    lines = [f"dry run of `imlgcn {command}`: nothing is trained or written, Ray does not start", "",
             "config (default < preset < YAML file < --set: the last wins):"]
    lines += _aligned([(f"{f.name} = {getattr(config, f.name)!r}", sources[f.name]) for f in fields(TrialConfig)])
    lines += [f"note: {note}" for note in config.notes()]
    if config.pretrained and not config.pretrained_path:
        lines.append(f"note: pretrained=true: the command first downloads timm's weights of {config.backbone} "
                     "(a dry run does not)")
    lines += ["", "options:", *option_lines(args, argv, command), ""]
    plan = {"train": _train_plan, "study run": _study_plan, "compare": _compare_plan}[command]
    steps, models = plan(args, config, data)
    lines += [*steps, "", f"data: {config.dataset}, {data.where}: {len(data.classes)} classes, "
              + ", ".join(f"{split} {count:,} images" for split, count in data.images.items())]
    lines += ["", "model (as `imlgcn params` counts it):", *models]
    return "\n".join(lines)


def sourced_config(preset: str | None, default_preset: str | None, config_file: str | None,
                   assignments: list[str]) -> tuple[TrialConfig, dict[str, str]]:
    """The command's config, validated as the command loads it, and each key's source: default, preset NAME,
    file PATH or --set (the last layer that sets it, in config_layers' order)."""
    chosen = preset or default_preset
    config = load_trial_config(chosen, config_file, assignments)
    sources = {f.name: "default" for f in fields(TrialConfig)}
    for source, values in config_layers(chosen, config_file, assignments):
        if chosen and preset is None and source == f"preset {chosen}":
            source += " (the command's default)"
        sources.update({key: source for key in values})
    return config, sources


def data_size(config: TrialConfig) -> DataSize:
    """The classes and images per split: the synthetic set's from the config (its generator draws exactly
    that many, and a dry run draws nothing), any other's read from its annotation files."""
    from study.driver.preflight import data_folder
    from trainables.data.datasets import get_dataset, read_split

    config.check_data_dir()
    entry = get_dataset(config.dataset)
    if config.dataset == "synthetic":
        from trainables.data.synthetic import class_set

        classes = tuple(name for _, name, _ in class_set(config.synthetic_classes))
        return DataSize("drawn on first use (not by a dry run)", classes,
                        {entry.train_split: config.synthetic_train_images, entry.eval_split: config.synthetic_val_images})
    path = data_folder(config)
    splits = {name: read_split(config.dataset, str(path), name) for name in (entry.train_split, entry.eval_split)}
    return DataSize(str(path), splits[entry.train_split].classes, {name: len(s) for name, s in splits.items()})


def _check_against_data(config: TrialConfig, data: DataSize) -> None:
    """What the command checks once it knows the classes, and local weights (read, not written)."""
    from study.driver.preflight import check_weights
    from trainables.stages.gcn_inputs import check_word_vectors

    config.check_classes(len(data.classes))
    check_word_vectors(config, data.classes)
    if config.pretrained_path:
        check_weights(config)


def option_lines(args: argparse.Namespace, argv: list[str], command: str) -> list[str]:
    """Each of the command's own options with its value and source: option --x where given, else default."""
    from study.driver.mlflow_store import resolve_tracking_uri
    from study.driver.preflight import redact

    given = given_options(argv)
    rows = []
    for action in _leaf(build_parser(), command.split())._actions:
        if not action.option_strings or action.dest in SHOWN_ELSEWHERE:
            continue
        value, source = getattr(args, action.dest), "option " + action.option_strings[0]
        if action.dest not in given:
            source = "$MLFLOW_TRACKING_URI" if action.dest == "tracking_uri" and os.environ.get(
                "MLFLOW_TRACKING_URI") else "default"
        shown = {"tracking_uri": lambda v: _store(redact(resolve_tracking_uri(v))),
                 "storage": lambda v: str(Path(v).expanduser().absolute())}.get(action.dest, lambda v: v)(value)
        rows.append((f"{action.option_strings[0]} = {'none' if shown is None else shown}", source))
    return _aligned(rows)


def _store(uri: str) -> str:
    """The MLflow store, and where a SQLite store keeps the runs' files (trainables.trial.mlflow_runs)."""
    if not uri.startswith("sqlite:///"):
        return uri
    return f"{uri} (artifacts in {Path(uri[len('sqlite:///'):]).parent / 'mlartifacts'})"


def given_options(argv: list[str]) -> set[str]:
    """The options the command line sets itself: argv parsed again with every default suppressed, so that
    argparse leaves out what it would fill in (abbreviations such as --stor are resolved as in the real parse)."""
    parser = build_parser()
    stack = [parser]
    while stack:
        current = stack.pop()
        current._defaults.clear()
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                stack += list(action.choices.values())
            else:
                action.default = argparse.SUPPRESS
    return set(vars(parser.parse_args(argv)))


def _leaf(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    """The parser of a (sub-)command, e.g. ["study", "run"]."""
    for word in words:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[word]
    return parser


Plan = tuple[list[str], list[str]]  # what a command runs, and its models' sizes (lines)


def _train_plan(args: argparse.Namespace, config: TrialConfig, data: DataSize) -> Plan:
    """One run: stage 1, the same-budget direct model, stage 3; and the model's sizes."""
    from trainables.training.epochs import model_label

    if config.direct_only:
        stage3 = "none (epochs=0): the stage-1 direct model is the result"
    else:
        how = "fine-tuning the backbone" if config.finetune_backbone else "the head alone on cached features"
        warm = (f", after {_plural(config.head_warmup_epochs, 'warm-up epoch')} of the head"
                if config.finetune_backbone and config.head_warmup_epochs else "")
        epochs = _plural(config.epochs, "epoch")
        stage3 = (f"{model_label(config)}: {epochs}, {how}{warm}" if config.embedding == "none" else
                  f"the direct model (same-budget baseline), then {model_label(config)}: {epochs} each, {how}{warm}")
    return (["trials: one run, in one Tune trial",
             f"  stage 1: {_plural(config.pretrain_epochs, 'epoch')} of the direct model (reused if stored under --storage)",
             f"  stage 3: {stage3}"], [size_line(model_label(config), model_sizes(config, len(data.classes)))])


def _study_plan(args: argparse.Namespace, config: TrialConfig, data: DataSize) -> Plan:
    """The space's searched keys per level, the trials of each level, and the model's sizes (each point's)."""
    from search_spaces import get_space
    from study.driver.console import quiet_libraries
    from study.driver.record import study_folder
    from study.levels.create import check_counts, check_max_concurrent, exists_message

    quiet_libraries()  # Optuna's "study created" lines, as in a study
    check_counts(args.num_samples, args.screen, args.eta)
    check_max_concurrent(args.max_concurrent)
    if study_folder(Path(args.storage).expanduser(), args.name).exists():
        raise ConfigError(exists_message(args.storage, args.name))
    space, classes = get_space(args.space), len(data.classes)
    screen = 0 if config.direct_only else args.screen
    points = 1
    for choices in space.plane.values():
        points *= len(choices)
    screened, finetuned = space.keys(classes, "screen"), space.keys(classes, "finetune")
    epochs = _plural(config.epochs, "epoch")
    lines = [f"searched (--space {args.space}):"]
    if screen:
        lines += [f"  screening: {', '.join(screened)}", "  fine-tuning: the promoted configurations' values, and "
                  + ", ".join(key for key in finetuned if key not in screened)]
    else:
        lines.append(f"  fine-tuning: {', '.join(finetuned)}")
    lines += ["trials:", "  first: stage 1 and the same-budget direct model of " + (
        f"each of the {points} (backbone, resolution) points" if space.plane else "the base config")]
    if screen:
        lines += [f"  screening: {screen:,} head configurations on cached features ({epochs} each)",
                  f"  fine-tuning: the {args.num_samples} best screened by (mAP, --size), {epochs} each"]
    else:
        lines.append(f"  fine-tuning: {args.num_samples} configurations sampled by Optuna, {epochs} each"
                     + (" (screening skipped: the direct model alone has no head)" if args.screen else ""))
    if not space.plane:
        return lines, [size_line("the base config (a trial's head follows its searched values)",
                                 model_sizes(config, classes))]
    return lines, [size_line(point.pop("model"), point) for point in model_sizes(config, classes, args.space)["points"]]


def _compare_plan(args: argparse.Namespace, config: TrialConfig, data: DataSize) -> Plan:
    """The arms (checked as the command checks them) over the seeds, and each arm's model sizes."""
    from study.comparison.arms import load_arms
    from study.comparison.compare import arm_configs, check_seeds, taken_message
    from study.driver.record import check_name
    from study.levels.create import check_max_concurrent
    from trainables.stages.gcn_inputs import check_word_vectors

    check_seeds(args.seeds)
    check_max_concurrent(args.max_concurrent)
    check_name(args.name, "comparison")
    folder = Path(args.storage).expanduser().absolute() / args.name
    if folder.exists():
        raise ConfigError(taken_message(folder))
    arms = load_arms(args.arms)
    configs = arm_configs(config, arms, len(data.classes))
    for name, arm in configs.items():
        try:
            check_word_vectors(arm, data.classes)
        except ConfigError as error:
            raise ConfigError(f"arm {name!r}: {error}") from None
    runs = len(arms) * len(args.seeds)
    lines = [f"arms (--arms {args.arms}; the first is the reference), each the config above plus:"]
    lines += [f"  {name}: {', '.join(f'{k}={v}' for k, v in overrides.items()) or '(nothing)'}"
              for name, overrides in arms.items()]
    lines += [f"trials: {len(arms)} arms x {len(args.seeds)} training seeds ({', '.join(map(str, args.seeds))}) = "
              f"{runs} runs, after stage 1 and the same-budget direct model of each seed"]
    return lines, [size_line(f"arm {name}", model_sizes(arm, len(data.classes))) for name, arm in configs.items()]


def model_sizes(config: TrialConfig, classes: int, space: str | None = None) -> dict:
    """`imlgcn params`' own result for this config (every key passed as --set), or for each point of `space`."""
    from study.command.params_command import params

    argv = ["params", "--num-classes", str(classes), "--set", *(f"{k}={v}" for k, v in config.to_dict().items())]
    return params(build_parser().parse_args(argv + (["--space", space] if space else [])))


def size_line(name: str, counts: dict) -> str:
    """One model's counts in words."""
    return (f"  {name}: {counts['total']:,} parameters (backbone {counts['backbone']:,}, head {counts['head']:,}), "
            f"{counts['inference']:,} deployed (folded), {counts['gflops']} GFLOPs per image at "
            f"{counts['image_size']} px")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _aligned(rows: list[tuple[str, str]]) -> list[str]:
    """`  text  (source)` lines, the sources in one column."""
    width = max((len(text) for text, _ in rows), default=0)
    return [f"  {text.ljust(width)}  ({source})" for text, source in rows]
