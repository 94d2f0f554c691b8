"""Driver-side configuration: presets and YAML files plus `--set key=value` -> a validated TrialConfig."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from trainables.config import ConfigError, TrialConfig
from trainables.config_keys import parse_assignments


def preset_names() -> list[str]:
    """Names of the presets shipped in study/presets (the YAML file stems)."""
    folder = resources.files("study") / "presets"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A flat mapping from a YAML file (safe_load); one-line errors for a missing or malformed file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist: pass an existing YAML file to --config")
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}: fix the syntax") from None
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a mapping of key: value pairs")
    return values


def preset_values(name: str) -> dict[str, Any]:
    """The values of a shipped preset; an unknown name lists the known ones."""
    if name not in preset_names():
        raise ConfigError(f"unknown preset {name!r}: choose one of {', '.join(preset_names())}")
    return read_yaml(Path(str(resources.files("study") / "presets" / f"{name}.yaml")))


def config_layers(preset: str | None = None, config_file: str | None = None,
                  assignments: list[str] | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The layers of a config, lowest first, each named by its source: ("preset NAME", ...), ("file PATH",
    ...), ("--set", ...). The one order every command merges them in (a later layer wins; the defaults lie
    below all of them), and what a dry run shows a value's source with."""
    layers = []
    if preset:
        layers.append((f"preset {preset}", preset_values(preset)))
    if config_file:
        layers.append((f"file {config_file}", read_yaml(config_file)))
    layers.append(("--set", parse_assignments(assignments or [])))
    return layers


def load_trial_config(preset: str | None = None, config_file: str | None = None,
                      assignments: list[str] | None = None) -> TrialConfig:
    """Defaults <- preset <- YAML file <- --set pairs, validated once (unknown keys are errors)."""
    values: dict[str, Any] = {}
    for _, layer in config_layers(preset, config_file, assignments):
        values.update(layer)
    config = TrialConfig.from_dict(values)
    config.check_backbone()
    return config
