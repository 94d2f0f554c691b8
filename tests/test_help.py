"""`imlgcn <command> --help` for every command and sub-command states each option's default once: no
"(default: None)", no default said twice ("(default: sqlite:///mlflow.db) (default: None)" once)."""

import argparse
import re

from study.command.parser import build_parser

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
    compare = _entries(parsers[("compare",)].format_help())
    assert compare["--tracking-uri"].endswith("MLflow store (default: sqlite:///mlflow.db)")
    assert compare["--seeds"].endswith("(default: [0, 1, 2])")
