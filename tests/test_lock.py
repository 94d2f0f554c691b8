"""The lock and pyproject's ranges agree: every locked version of a declared dependency lies in its range (a
bound moved in pyproject without a new lock, or a lock written from another environment, fails here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_locked_dependency_lies_in_its_pyproject_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(text) for text in
                project["dependencies"] + [t for extra in project["optional-dependencies"].values() for t in extra]]
    locked = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[_canonical(name)] = version.strip()
    outside = [f"{r.name} {locked.get(_canonical(r.name), 'not locked')} not in {r.specifier}" for r in declared
               if _canonical(r.name) not in locked or not r.specifier.contains(locked[_canonical(r.name)], prereleases=True)]
    assert not outside, "; ".join(outside)
