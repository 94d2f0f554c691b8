"""How a person reads and writes TrialConfig keys: `imlgcn config`'s listing of every key (describe_keys) and
the `--set key=value` pairs of the command line (parse_assignments).

Kept apart from trainables.config, which a Ray worker imports for every trial: neither is needed there. The
values of the pairs stay strings; TrialConfig.from_dict turns them into each field's type.
"""

from __future__ import annotations

from dataclasses import fields

from trainables.config import PARTS, ConfigError, TrialConfig


def describe_keys() -> str:
    """Every TrialConfig key with its type, default, the parts of a run it affects and the comment that
    explains it, grouped as in the class (comments read from its source: the help cannot drift)."""
    import inspect
    import re

    comments, groups = {}, {}
    group = ""
    for line in inspect.getsource(TrialConfig).splitlines():
        heading = re.match(r"\s+# --- (.+)", line)
        declared = re.match(r"\s+(\w+): \w+ = knob\(.*?\)(?:\s+# (.+))?$", line)
        if heading:
            group = heading.group(1)
        elif declared:
            comments[declared.group(1)], groups[declared.group(1)] = declared.group(2) or "", group
    lines, shown = ["Each key: name = default (type; tags)  meaning. The tags say what a key affects:"], None
    lines += [f"  {part}: {meaning}" for part, meaning in part_meanings().items()]
    for f in fields(TrialConfig):
        if groups.get(f.name) != shown:
            shown = groups.get(f.name)
            lines.append(f"\n[{shown}]")
        parts = ",".join(part for part in PARTS if part in f.metadata["parts"])
        meaning = f"  {comments[f.name]}" if comments.get(f.name) else ""
        lines.append(f"  {f.name} = {f.default!r} ({f.type}; {parts}){meaning}")
    return "\n".join(lines).strip()


def part_meanings() -> dict[str, str]:
    """What each tag of the listing (one of PARTS) means: the comment beside its declaration in
    trainables.config, read from the source like the keys' meanings, so that the two cannot drift."""
    import inspect
    import re

    import trainables.config as declared_in

    meanings: dict[str, str] = {}
    current = None
    for line in inspect.getsource(declared_in).splitlines():
        declared = re.match(r'[A-Z0-9_]+ = "(\w+)"\s+# (.+)', line)
        continued = re.match(r"#\s+(.+)", line)
        if declared and declared.group(1) in PARTS:
            current = declared.group(1)
            meanings[current] = declared.group(2)
        elif continued and current:
            meanings[current] += " " + continued.group(1)
        else:
            current = None
    return {part: meanings.get(part, "") for part in PARTS}


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`["tau=0.3", "backbone=resnet18"]` -> dict; a pair without '=' is an error naming it. A key given twice
    takes its last value, as a repeated option does in argparse: scripts build a base list and append
    overrides (a dry run shows the value that won)."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r} is not key=value: write e.g. --set tau=0.3")
        out[key.strip()] = value.strip()
    return out
