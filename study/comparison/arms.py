"""Arm sets for `imlgcn compare`: plain dicts, name -> config overrides, the reference arm first.

`table3` is the paper's Table 3 ablation (word -> fi -> fpca) measured against the same-budget direct
model, with the controls that tell what an effect is due to:
- direct-reinit: a new linear head, so "new head" and "GCN" are separate effects;
- fpca-p0: p = 0 makes A' the identity (no label context), so a gain without it is not the graph's;
- random-nodes: node features with no label information (fixed by the seed, k = C columns like fpca);
- fi-centred: F_I minus its mean row, which tells how much of PCA's gain is only centring.
`sizes` crosses the `sizes` space's backbones with the direct and the fpca head (the paper's question with
seeds: see study.comparison.compare_sizes). A YAML file of the same shape (arm name: {key: value}) defines a custom set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from search_spaces.sizes import PLANE as SIZES_PLANE
from trainables.config import RUN, keys_of

ARM_SETS: dict[str, dict[str, dict[str, Any]]] = {
    "table3": {
        "direct": {"embedding": "none", "direct_head": "keep"},
        "direct-reinit": {"embedding": "none", "direct_head": "reinit"},
        "word": {"embedding": "word"},
        "fi": {"embedding": "fi"},
        "fi-centred": {"embedding": "fi_centred"},
        "fpca": {"embedding": "fpca"},
        "fpca-p0": {"embedding": "fpca", "p": 0.0},
        "random-nodes": {"embedding": "random"},
    },
    "paper": {
        "direct": {"embedding": "none", "direct_head": "keep"},
        "word": {"embedding": "word"},
        "fi": {"embedding": "fi"},
        "fpca": {"embedding": "fpca"},
    },
}
ARM_SETS["sizes"] = {  # the `sizes` plane's backbones crossed with heads, at the base config's resolution
    f"{head}-{backbone}": {"backbone": backbone, "embedding": "none" if head == "direct" else "fpca"}
    for backbone in SIZES_PLANE["backbone"] for head in ("direct", "fpca")}
SHARED_KEYS = keys_of(RUN)  # every arm of a set runs the same way (workers, devices: one resource request)


def load_arms(spec: str) -> dict[str, dict[str, Any]]:
    """A built-in arm set by name, or a YAML file of arm name -> overrides; the first arm is the reference."""
    if spec in ARM_SETS:
        return ARM_SETS[spec]
    from study.driver.config import read_yaml
    from trainables.config import ConfigError

    if not Path(spec).suffix in (".yaml", ".yml"):
        raise ConfigError(f"--arms {spec!r} is neither a built-in arm set ({', '.join(ARM_SETS)}) nor a YAML file")
    arms = read_yaml(spec, "--arms", "`arm_name: {key: value, ...}` per arm")
    bad = [name for name, overrides in arms.items() if not isinstance(overrides, dict)]
    if bad or not arms:
        raise ConfigError(f"--arms {spec}: arm {bad[0] if bad else '(none)'!r} is not a mapping of config keys: "
                          "write `arm_name: {key: value, ...}` per arm")
    return {str(name): dict(overrides) for name, overrides in arms.items()}
