"""Old dotted paths of modules that moved into rooms, kept importable for what was pickled before the move.

A Tune run's saved state names the classes and functions it holds by module path (the searcher, the
schedulers, the console callback, the trial functions), and so do MLflow's and Ray's pickles: a study started
before 2026-12-07 resumes after the move only if `study.search` still finds `study.levels.search`. Each
package's `__init__` hands its table of old -> new names to `alias`; an old name then imports as the very
module object of the new one (no copy: a class pickled under either name is the same class).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
from types import ModuleType


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name in its table and loads it as the module at the new name."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    def find_spec(self, fullname: str, path=None, target=None) -> importlib.machinery.ModuleSpec | None:
        return importlib.machinery.ModuleSpec(fullname, self) if fullname in self.table else None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return importlib.import_module(self.table[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: the module at the new name is already executed."""


def alias(table: dict[str, str]) -> None:
    """Make every old name in `table` import as its new module (installed once per table)."""
    if not any(isinstance(finder, _MovedModules) and finder.table is table for finder in sys.meta_path):
        sys.meta_path.append(_MovedModules(table))
