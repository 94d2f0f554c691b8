"""`imlgcn compare` over arms on several backbones or resolutions (`--arms sizes`): the paper's question
with seeds. Per arm its deployed size; per point (backbone, resolution) the GCN head's paired gain over that
point's direct arm; and the answer: the best IML-GCN arm against the smallest direct arm whose mean mAP
reaches it, with the paired difference between the two and its 95 % interval over the training seeds.

The rules of study.reports.ties: a direct arm reaches the best IML-GCN arm when its mean mAP is at least as
high or when the 95 % interval of their paired difference holds 0 (the same accuracy within the seeds'
noise); the head gives a smaller model only when the direct arm is larger by more than the size tolerance."""

from __future__ import annotations

from typing import Mapping

import numpy as np

from study.comparison.paired import mean_sd, paired_interval
from study.levels.references import point_name
from study.reports.ties import SIZE_TOLERANCE, same_accuracy, same_size, smaller, tolerance_text
from trainables.config import TrialConfig
from trainables.size_measures import SIZE_MEASURES

SIZE = "n_params_inference"  # what deployment keeps: the folded model
MEASURE = SIZE_MEASURES[SIZE]


def _interval(arm: list[float], reference: list[float]) -> str:
    mean, low, high = paired_interval(arm, reference)
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"


def sizes_text(results: Mapping[str, Mapping[int, Mapping]], configs: Mapping[str, TrialConfig],
               tolerance: float = SIZE_TOLERANCE) -> str:
    """The sizes section of the comparison table (see the module docstring)."""
    seeds = sorted(next(iter(results.values())))
    m_ap = {arm: [float(results[arm][s]["mAP"]) for s in seeds] for arm in results}
    size = {arm: float(np.median([results[arm][s][SIZE] for s in seeds])) for arm in results}
    lines = ["Sizes: each arm's deployed (folded) model, and its mAP over the seeds",
             *(f"  {arm}: {point_name(configs[arm])}, {MEASURE.text(size[arm])} {MEASURE.label}, mAP "
               f"{mean_sd(m_ap[arm])[0]:.2f} ± {mean_sd(m_ap[arm])[1]:.2f}" for arm in results)]
    directs = {point_name(configs[arm]): arm for arm in results if configs[arm].embedding == "none"}
    heads = [arm for arm in results if configs[arm].embedding != "none"]
    gains = [f"  {arm} - {directs[point_name(configs[arm])]}: {_interval(m_ap[arm], m_ap[directs[point_name(configs[arm])]])}"
             for arm in heads if point_name(configs[arm]) in directs]
    if gains:
        lines += ["The GCN head on its own backbone (paired difference in mAP, 95 % interval over seeds):", *gains]
    if not heads or not directs:
        return "\n".join(lines)
    best = max(heads, key=lambda arm: (np.mean(m_ap[arm]), -size[arm]))
    noise = {arm: same_accuracy(*paired_interval(m_ap[best], m_ap[arm])[1:]) for arm in directs.values()}
    reaching = [arm for arm in directs.values() if np.mean(m_ap[arm]) >= np.mean(m_ap[best]) or noise[arm]]
    if not reaching:
        top = max(directs.values(), key=lambda arm: np.mean(m_ap[arm]))
        lines.append(f"No direct arm reaches the best IML-GCN arm {best} ({point_name(configs[best])}, mean mAP "
                     f"{np.mean(m_ap[best]):.2f}); the best direct arm, {top}, is {_interval(m_ap[best], m_ap[top])} "
                     f"below it ({best} - {top}).")
        return "\n".join(lines)
    match = min(reaching, key=lambda arm: (size[arm], -np.mean(m_ap[arm])))
    ratio = size[best] / size[match]
    gain = smaller(size[best], size[match], tolerance) and point_name(configs[match]) != point_name(configs[best])
    verdict = ("the GCN head reaches that mAP with a smaller model" if gain else
               "in this comparison the GCN head gives no smaller model for that mAP")
    if same_size(size[best], size[match], tolerance):
        verdict += f" (the same size within {tolerance_text(tolerance)})"
    if np.mean(m_ap[match]) < np.mean(m_ap[best]):
        verdict += f"; {match} reaches it within the seeds' noise (the interval holds 0)"
    elif noise[match] is None:
        verdict += "; one seed cannot tell the difference from noise: run more --seeds"
    lines.append(f"{best} (IML-GCN on {point_name(configs[best])}, mean mAP {np.mean(m_ap[best]):.2f}) against the smallest "
                 f"direct arm that reaches it, {match} ({point_name(configs[match])}, {np.mean(m_ap[match]):.2f}): "
                 f"{ratio:.2f}x its {MEASURE.label} ({MEASURE.text(size[best])} against "
                 f"{MEASURE.text(size[match])}), paired difference {best} - {match} {_interval(m_ap[best], m_ap[match])}: "
                 f"{verdict}.")
    return "\n".join(lines)
