"""The installed environment against requirements-lock.txt: every locked package at its locked version and
nothing else installed (pip freeze, the project itself left out). Exit 1 on any difference, each one a line;
--report-only prints the differences (an IMLGCN_LATEST run: what is newer than the lock) and exits 0."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from packaging.utils import canonicalize_name

LOCK = Path(__file__).resolve().parents[1] / "requirements-lock.txt"


def pins(lines: list[str]) -> dict[str, str]:
    """{canonical name: version} of `name==version` lines (comments and blank lines skipped)."""
    found = {}
    for line in lines:
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            found[canonicalize_name(name)] = version
    return found


def main() -> int:
    locked = pins(LOCK.read_text().splitlines())
    frozen = subprocess.run([sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True,
                            text=True, check=True).stdout.splitlines()
    installed = pins(frozen)
    differences = [f"{name}: locked {locked.get(name, 'no')}, installed {installed.get(name, 'no')}"
                   for name in sorted(locked.keys() | installed.keys()) if locked.get(name) != installed.get(name)]
    for line in differences:
        print(f"lock: {line}")
    print(f"lock: {len(installed)} installed packages against {len(locked)} locked: "
          f"{len(differences) or 'no'} difference{'s' * (len(differences) != 1)}")
    return 1 if differences and "--report-only" not in sys.argv else 0


if __name__ == "__main__":
    sys.exit(main())
