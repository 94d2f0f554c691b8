"""`imlgcn <command> --help` for every command and sub-command: each option and argument has help, states its
default once (no "(default: None)", no default said twice, none for a required one), and offers only the
choices that work there; `imlgcn --version` prints the installed version."""

import argparse
import re
from importlib.metadata import version

import pytest

from search_spaces import get_space
from study.command.cli import main
from study.command.parser import build_parser
from study.driver.config import preset_names

STATED = re.compile(r"\(default\b|\bdefault:")


def _parsers(parser, path=()):
    """(the command's words, its parser) for `imlgcn` and every command and sub-command under it."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, (*path, name))


def _entries(text: str) -> dict[str, str]:
    """Each option's entry of a --help text (its first word -> its lines joined), as printed."""
    entries, current = {}, None
    for line in text.splitlines():
        if re.match(r"  \S", line):
            current = line.split()[0].rstrip(",")
            entries[current] = line
        elif line.startswith("   ") and current is not None:
            entries[current] += " " + line
        else:
            current = None
    return {key: " ".join(value.split()) for key, value in entries.items()}


def test_every_help_states_each_default_once(monkeypatch):
    """Every option whose default says something (not None, a flag's False or an empty list) states it,
    once; none says "(default: None)"."""
    monkeypatch.setenv("COLUMNS", "100")
    parsers = dict(_parsers(build_parser()))
    assert {("compare",), ("study", "run"), ("study", "report"), ("data", "synth"), ("predict",)} <= set(parsers)
    for path, parser in parsers.items():
        text = parser.format_help()
        assert "(default: None)" not in " ".join(text.split()), path
        entries = _entries(text)
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS:
                continue
            entry = entries[action.option_strings[0]]
            said = len(STATED.findall(entry))
            assert said <= 1, (path, entry)
            assert said == 1 or action.default in (None, False, [], argparse.SUPPRESS), (path, entry)
            assert not (action.required and said), (path, entry)  # a required option has no default
    compare = _entries(parsers[("compare",)].format_help())
    assert compare["--tracking-uri"].endswith("MLflow store (default: sqlite:///mlflow.db)")
    assert compare["--seeds"].endswith("(default: [0, 1, 2])")


def _documented(parser) -> list[argparse.Action]:
    """The options and arguments a user types: not the sub-command selector, not the hidden copies of --verbose."""
    return [action for action in parser._actions
            if not isinstance(action, argparse._SubParsersAction) and action.help != argparse.SUPPRESS]


def test_every_option_and_argument_has_help():
    """An option without help hides what it does and its default (`--help` prints its name alone)."""
    for path, parser in _parsers(build_parser()):
        for action in _documented(parser):
            assert action.help and action.help.strip(), (path, action.option_strings or action.dest)


def test_choices_offered_are_the_ones_that_work():
    """`params --space` counts a space's (backbone, resolution) points: a head-only space has none, and fails."""
    parsers = dict(_parsers(build_parser()))
    offered = next(a.choices for a in parsers[("params",)]._actions if "--space" in a.option_strings)
    assert offered and all(get_space(name).plane for name in offered), offered


def test_preset_lists_the_presets(monkeypatch, capsys):
    """Every command that takes --preset names every shipped preset in its help, and an unknown one in its error."""
    monkeypatch.setenv("COLUMNS", "100")
    with_preset = [(path, parser) for path, parser in _parsers(build_parser())
                   if any("--preset" in a.option_strings for a in parser._actions)]
    assert {path for path, _ in with_preset} == {("train",), ("params",), ("compare",), ("study", "run")}
    for path, parser in with_preset:
        entry = _entries(parser.format_help())["--preset"]
        assert all(name in entry for name in preset_names()), (path, entry)
        assert len(re.findall(r"\(default\b", entry)) == 1, (path, entry)
    assert main(["params", "--preset", "nope"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and all(name in error for name in preset_names()), error


def test_version_prints_the_installed_version(capsys):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"imlgcn {version('imlgcn-study')}"
