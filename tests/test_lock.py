"""The lock and pyproject's ranges agree: every locked version of a declared dependency lies in its range (a
bound moved in pyproject without a new lock, or a lock written from another environment, fails here)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def test_every_locked_dependency_lies_in_its_pyproject_range() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = [Requirement(text) for text in
                project["dependencies"] + [t for extra in project["optional-dependencies"].values() for t in extra]]
    locked = {}
    for line in (ROOT / "requirements-lock.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            locked[canonicalize_name(name)] = version.strip()
    outside = [f"{r.name} {locked.get(canonicalize_name(r.name), 'not locked')} not in {r.specifier}" for r in declared
               if canonicalize_name(r.name) not in locked or not r.specifier.contains(locked[canonicalize_name(r.name)], prereleases=True)]
    assert not outside, "; ".join(outside)
