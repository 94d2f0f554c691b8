"""YAML as users write it, read without silent guesses: PyYAML's safe loader keeps the last of two equal
keys (`tau: 0.1` ... `tau: 0.3` runs with 0.3 without a word), so this loader refuses a key given twice."""

from __future__ import annotations

from typing import Any

import yaml


class DuplicateKey(yaml.YAMLError):
    """A mapping gives `key` twice: at `first_line` and again at `line` (1-based)."""

    def __init__(self, key: Any, first_line: int, line: int) -> None:
        super().__init__(f"key {key!r} is given twice (lines {first_line} and {line})")
        self.key, self.first_line, self.line = key, first_line, line


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader whose mappings reject a repeated key (merge keys `<<` keep their override meaning)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key, line = self.construct_object(key_node, deep=True), key_node.start_mark.line + 1
                try:
                    if key in seen:
                        raise DuplicateKey(key, seen[key], line)
                    seen[key] = line
                except TypeError:  # an unhashable key: SafeLoader's own error says so below
                    continue
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """The YAML document in `text` (safe: plain data only); DuplicateKey for a repeated key."""
    loader = _UniqueKeyLoader(text)  # a SafeLoader subclass, used as yaml.safe_load uses SafeLoader
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
