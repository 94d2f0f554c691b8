"""Paired statistics over training seeds, for `imlgcn compare` (pure NumPy/SciPy, tested by hand).

Every arm is trained once per seed on the same data and from the same seed's stage 1, so arm and
reference are paired by seed: the difference d_s = arm_s - reference_s removes what the seed does to
both. For n seeds:
    mean = (1/n) sum_s d_s,   sd = sqrt(sum_s (d_s - mean)^2 / (n - 1)),
    95 % interval = mean -/+ t_{0.975, n-1} * sd / sqrt(n)   (Student's t; undefined for n = 1).
Per-class AP differences are averaged over the classes of a frequency group (head, middle, tail: thirds
of the classes ordered by training images) within each seed, then treated as above.
An arm is higher or lower in mAP than the reference only when the interval excludes 0; an interval that
holds 0 is the same accuracy within the seeds' noise, and one seed cannot tell (study.reports.ties).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from scipy import stats

from study.reports.ties import same_accuracy

GROUPS = ("head", "middle", "tail")


def mean_sd(values: Sequence[float]) -> tuple[float, float]:
    """(mean, sample standard deviation with n - 1); sd is NaN for one value."""
    x = np.asarray(values, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else float("nan")


def paired_interval(arm: Sequence[float], reference: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean difference, lower, upper) of arm - reference over paired seeds (Student's t interval)."""
    d = np.asarray(arm, dtype=np.float64) - np.asarray(reference, dtype=np.float64)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError("paired_interval needs one value per seed for both arms, in the same seed order")
    mean = float(d.mean())
    if len(d) < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + level / 2, len(d) - 1) * d.std(ddof=1) / np.sqrt(len(d))
    return mean, float(mean - half), float(mean + half)


def frequency_groups(train_counts: Sequence[int]) -> np.ndarray:
    """'head' / 'middle' / 'tail' per class: thirds of the classes by training images, most frequent first
    (ties broken by class index; with C classes the head gets ceil(C/3), the tail floor(C/3))."""
    counts = np.asarray(train_counts)
    order = np.argsort(-counts, kind="stable")
    groups = np.empty(len(counts), dtype=object)
    for group, members in zip(GROUPS, np.array_split(order, 3)):
        groups[members] = group
    return groups


def group_differences(arm_ap: Sequence[Sequence[float]], reference_ap: Sequence[Sequence[float]],
                      groups: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    """Per frequency group: the paired interval of the per-seed mean AP difference (arm - reference) over
    the group's classes. Rows are seeds, columns classes; classes without a positive (NaN) are skipped."""
    arm_ap, reference_ap = np.asarray(arm_ap, np.float64), np.asarray(reference_ap, np.float64)
    groups = np.asarray(groups)
    out = {}
    for group in GROUPS:
        columns = groups == group
        if not columns.any():
            continue
        per_seed = np.nanmean(arm_ap[:, columns] - reference_ap[:, columns], axis=1)
        out[group] = paired_interval(per_seed, np.zeros_like(per_seed))
    return out


def compare_table(results: Mapping[str, Mapping[int, Mapping]], reference: str, groups: Sequence[str],
                  metrics: Sequence[str] = ("mAP", "CF1", "OF1")) -> list[dict]:
    """One row per arm: mean and sd of each metric over seeds, and the paired differences to `reference`
    (mAP, and per-class AP by frequency group). `results[arm][seed]` holds the metrics and `class_AP`."""
    seeds = sorted(results[reference])
    rows = []
    for arm, by_seed in results.items():
        missing = [s for s in seeds if s not in by_seed]
        if missing:
            raise ValueError(f"arm {arm!r} has no result for seed {missing[0]}: every arm needs every seed")
        row: dict = {"arm": arm, "seeds": len(seeds)}
        for metric in metrics:
            row[metric], row[f"{metric}_sd"] = mean_sd([by_seed[s][metric] for s in seeds])
        if arm != reference:
            row["d_mAP"], row["d_mAP_low"], row["d_mAP_high"] = paired_interval(
                [by_seed[s]["mAP"] for s in seeds], [results[reference][s]["mAP"] for s in seeds])
            for group, (mean, low, high) in group_differences(
                    [by_seed[s]["class_AP"] for s in seeds], [results[reference][s]["class_AP"] for s in seeds],
                    groups).items():
                row[f"d_AP_{group}"], row[f"d_AP_{group}_low"], row[f"d_AP_{group}_high"] = mean, low, high
        rows.append(row)
    return rows


def format_table(rows: Sequence[Mapping], reference: str, title: str) -> str:
    """The table as plain text: mean ± sd per metric; paired differences as mean [low, high]."""
    def interval(row: Mapping, key: str) -> str:
        if key not in row:
            return "-"
        low, high = row.get(f"{key}_low", float("nan")), row.get(f"{key}_high", float("nan"))
        return f"{row[key]:+.2f} [{low:+.2f}, {high:+.2f}]"

    header = ["arm", "mAP", "CF1", "OF1", f"mAP - {reference} [95% CI]", "AP - ref: head", "middle", "tail"]
    body = [[row["arm"], *(f"{row[m]:.2f} ± {row[m + '_sd']:.2f}" for m in ("mAP", "CF1", "OF1")),
             interval(row, "d_mAP"), *(interval(row, f"d_AP_{g}") for g in GROUPS)] for row in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    text = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths)))
            for line in [header, *body]]
    return "\n".join([title, *text, verdict(rows, reference)])


def verdict(rows: Sequence[Mapping], reference: str) -> str:
    """One line: each arm's mAP against the reference by its paired 95 % interval (see the module docstring)."""
    groups: dict[str, list[str]] = {"higher": [], "the same within the seeds' noise": [], "lower": [],
                                    "not told from noise with one seed": []}
    for row in rows:
        if "d_mAP" not in row:
            continue
        same = same_accuracy(row.get("d_mAP_low", float("nan")), row.get("d_mAP_high", float("nan")))
        group = ("not told from noise with one seed" if same is None else "the same within the seeds' noise"
                 if same else "higher" if row["d_mAP"] > 0 else "lower")
        groups[group].append(row["arm"])
    found = "; ".join(f"{group}: {', '.join(arms)}" for group, arms in groups.items() if arms)
    return f"mAP against {reference} (95 % interval holding 0 = the same): {found or 'no other arm'}"
