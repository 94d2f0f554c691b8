"""One version set per cluster: the driver's packages against every alive node's, before any trial.

The driver pickles trial functions and configs, and every node unpickles them with its own torch, timm,
Optuna, Ray and its own copy of this project; two nodes installed a week apart differ, and the study then
fails (or silently trains another model) deep inside a trial. Before any trial, each alive node reports the
versions it sees of the project's runtime packages (the closure of imlgcn-study's requirements, read from
the installed metadata, extras followed) and a digest of the project's own files; the first difference
stops the command with one line naming the node, the package and both versions.
"""

from __future__ import annotations

import hashlib
import importlib.util
from importlib import metadata
from pathlib import Path

from packaging.utils import canonicalize_name

PROJECT = "imlgcn-study"
PROJECT_PACKAGES = ("study", "trainables", "search_spaces")
ANSWER_TIMEOUT_S = 120.0  # a node's answer: one zero-CPU task (a worker process may have to start there)


def runtime_packages(project: str = PROJECT) -> tuple[str, ...]:
    """The installed distributions `project` needs at run time: its requirements, theirs, and so on, with the
    extras each asks for (ray[default,tune,train] brings Ray's extras' packages), sorted."""
    from packaging.requirements import Requirement

    seen: dict[str, set[str]] = {}
    queue: list[tuple[str, frozenset[str]]] = [(project, frozenset())]
    while queue:
        name, extras = queue.pop()
        key = canonicalize_name(name)
        if key in seen and extras <= seen[key]:
            continue
        seen.setdefault(key, set()).update(extras)
        try:
            requires = metadata.requires(name) or []
        except metadata.PackageNotFoundError:
            continue  # a requirement that is not installed: its absence shows as a difference, not here
        for text in requires:
            requirement = Requirement(text)
            wanted = requirement.marker is None or any(
                requirement.marker.evaluate({"extra": extra}) for extra in ("", *extras))
            if wanted:
                queue.append((requirement.name, frozenset(requirement.extras)))
    return tuple(sorted(seen.keys() - {canonicalize_name(project)}))


def project_digest() -> str:
    """A digest of the project's installed files (code and packaged data): two copies of one version
    number can hold different code, and a node runs its own copy."""
    digest = hashlib.sha256()
    for package in PROJECT_PACKAGES:
        spec = importlib.util.find_spec(package)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            root = Path(folder)
            for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                               and p.suffix != ".pyc"):
                digest.update(f"{package}/{path.relative_to(root).as_posix()}\0".encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def versions(names: tuple[str, ...]) -> dict[str, str | None]:
    """The version this process sees of each distribution (None: not installed), and the project's own
    version with its files' digest. Runs on the driver and, as a Ray task, on every node."""
    seen: dict[str, str | None] = {}
    for name in names:
        try:
            seen[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            seen[name] = None
    try:
        seen[PROJECT] = f"{metadata.version(PROJECT)} (files {project_digest()})"
    except metadata.PackageNotFoundError:
        seen[PROJECT] = None
    return seen


def differences(driver: dict[str, str | None], node: dict[str, str | None]) -> list[str]:
    """`package X on the node, Y on the driver` for each package whose versions differ."""
    return [f"{name} {node.get(name) or 'not installed'} on the node, {version or 'not installed'} on the driver"
            for name, version in driver.items() if node.get(name) != version]


def check_cluster() -> None:
    """Ask every alive node of the joined cluster for its versions; ConfigError on the first node that
    differs from the driver (or does not answer)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from trainables.config import ConfigError

    names = runtime_packages()
    mine = versions(names)
    ask = ray.remote(num_cpus=0, max_retries=0)(versions)
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    answers = {n["NodeID"]: ask.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False))
               .remote(names) for n in nodes}
    fix = ("install the same versions on every node and on the driver (pip install -c requirements-lock.txt -e . "
           "from the same checkout) and restart the node")
    for node in nodes:
        where = f"Ray node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"
        try:
            theirs = ray.get(answers[node["NodeID"]], timeout=ANSWER_TIMEOUT_S)
        except ray.exceptions.GetTimeoutError:
            raise ConfigError(f"{where} did not report its package versions within {ANSWER_TIMEOUT_S:.0f} s: "
                              "check that it is healthy (ray status)") from None
        except ray.exceptions.RayError as error:
            cause = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
            raise ConfigError(f"{where} cannot run this project's code ({cause}): {fix}") from None
        found = differences(mine, theirs)
        if found:
            raise ConfigError(f"{where} runs other versions than this driver: {'; '.join(found)}: {fix}")
