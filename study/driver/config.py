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


CONFIG_SHAPE = "one key: value per line (`imlgcn config` lists the keys)"


def read_yaml(path: str | Path, option: str = "--config", shape: str = CONFIG_SHAPE) -> dict[str, Any]:
    """A mapping from a YAML file (safe, a key given twice refused); one line naming the file, the line and
    the fix for a missing, unreadable, empty or malformed file. `option` named the file; `shape` is what
    it should hold, for the fix."""
    from study.driver.strict_yaml import DuplicateKey, load

    path, what = Path(path), f"{option.lstrip('-')} file"  # config file, arms file
    if path.is_dir():
        raise ConfigError(f"{option} {path} is a folder, not a YAML file: pass a YAML file to {option}")
    if not path.is_file():
        raise ConfigError(f"{what} {path} does not exist: pass an existing YAML file to {option}")
    try:
        values = load(path.read_text(encoding="utf-8"))
    except DuplicateKey as error:
        lines = (f"on line {error.line}" if error.line == error.first_line
                 else f"on lines {error.first_line} and {error.line}")
        raise ConfigError(f"{what} {path} gives key {error.key!r} twice ({lines}): keep one") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{what} {path} is not valid YAML{where}: fix the syntax") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {path} is not UTF-8 text: save it as UTF-8 YAML") from None
    except OSError as error:
        raise ConfigError(f"{what} {path} cannot be read ({error.strerror or type(error).__name__}): "
                          "make it readable") from None
    if values is None:
        raise ConfigError(f"{what} {path} is empty: write {shape} in it, or leave out {option}")
    if not isinstance(values, dict):
        raise ConfigError(f"{what} {path} holds a {type(values).__name__}, not a mapping: write {shape}")
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
