"""The report's first line: one sentence that answers the study's question at any outcome, for every space.

- A head-only space (one direct model): the best IML-GCN trial against the same-budget direct model, in
  mAP and in the study's size, sizes within the tolerance being the same size (study.reports.ties):
  "On this data the GCN head does not beat the direct model: at the same size (375,280 against 375,307
  inference parameters, within 1 %), the direct model is 0.08 mAP ahead (60.55 against the best IML-GCN's
  60.47, trial 5e8e48a6); one seed each, which cannot tell ...". The verdict by (mAP, size): ahead and the same size or smaller:
  "beats"; ahead and larger: "is more accurate than the direct model, and larger"; behind and smaller:
  "is smaller than the direct model, and less accurate"; equal mAP at the same size: "ties with"; else
  "does not beat".
- A size plane: study.reports.plane.answer, with the same clause on noise.
- A study trains every model once (one seed): the sentence gives the mAP difference and says that one seed
  cannot tell it from seed noise, naming the `imlgcn compare` command that would. That command's files are
  written beside the report: compare-arms.yaml (the direct model first, then the best IML-GCN trial's
  searched values) and compare-base.yaml (the study's base config, from its parent run).
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any, Callable, Mapping

import pandas as pd

from study.reports.plane import answer_models, eligible, model_name
from study.reports.ties import SIZE_TOLERANCE, same_size, smaller, tolerance_text
from trainables.config import SEARCH, ConfigError, TrialConfig, keys_of
from trainables.embeddings import key_applies
from trainables.size_measures import SIZE_MEASURES, known

SEEDS = (0, 1, 2)
Command = Callable[[dict[str, dict[str, Any]]], str]  # compare arms -> the command that runs them


def one_seed(difference: float, command: str) -> str:
    """The clause on noise for one measurement each."""
    return (f"one seed each, which cannot tell {abs(difference):.2f} mAP from seed noise: `{command}` would "
            f"({len(SEEDS)} training seeds, paired)")


def head_only_answer(trials: pd.DataFrame, baseline: pd.Series | None, size: str, command: Command,
                     tolerance: float = SIZE_TOLERANCE) -> str:
    """The sentence of a study with one direct model (see the module docstring)."""
    measure = SIZE_MEASURES[size]
    gcn = trials[eligible(trials) & (trials["embedding"] != "none")]
    if gcn.empty:
        return "No IML-GCN trial ran all its epochs: nothing to compare with the direct model yet."
    best = gcn.sort_values(["mAP", size], ascending=[False, True]).iloc[0]
    m_ap, trial = float(best["mAP"]), f"trial {best['trial_id']}"
    if baseline is None or not known(baseline.get("mAP")):
        return (f"The best IML-GCN ({trial}) reaches {m_ap:.2f} mAP at {measure.text(float(best[size]))} "
                f"{measure.label}; the study has no direct model to compare it with.")
    direct = float(baseline["mAP"])
    difference = m_ap - direct
    if known(best.get(size)) and known(baseline.get(size)):
        a, b = float(best[size]), float(baseline[size])
        relation = "same" if same_size(a, b, tolerance) else "smaller" if smaller(a, b, tolerance) else "larger"
        sizes = f"{measure.text(a)} against {measure.text(b)} {measure.label}"
        where = (f"at the same size ({sizes}, within {tolerance_text(tolerance)})" if relation == "same"
                 else f"at {a / b:.2f}x the direct model's size ({sizes})")
    else:
        relation, where = "unknown", f"with {measure.label} not known for both"
    if difference > 0:
        accuracy = f"the best IML-GCN ({trial}) is {difference:.2f} mAP ahead ({m_ap:.2f} against {direct:.2f})"
    elif difference < 0:
        accuracy = f"the direct model is {-difference:.2f} mAP ahead ({direct:.2f} against the best IML-GCN's {m_ap:.2f}, {trial})"
    else:
        accuracy = f"the best IML-GCN ({trial}) and the direct model have the same mAP ({m_ap:.2f})"
    verdict = _verdict(difference, relation)
    arms = {"direct": {"embedding": "none"}, f"trial-{best['trial_id']}": trial_arm(best)}
    return f"On this data {verdict}: {where}, {accuracy}; {one_seed(difference, command(arms))}."


def _verdict(difference: float, relation: str) -> str:
    """What the GCN head does against the direct model, from the mAP difference and the size relation
    (same | smaller | larger | unknown: the IML-GCN's size against the direct model's)."""
    if difference > 0:
        return {"larger": "the GCN head is more accurate than the direct model, and larger",
                "unknown": "the GCN head is more accurate than the direct model"}.get(relation,
                                                                                     "the GCN head beats the direct model")
    if relation == "smaller":
        return "the GCN head beats the direct model" if difference == 0 else \
            "the GCN head is smaller than the direct model, and less accurate"
    if difference == 0 and relation == "same":
        return "the GCN head ties with the direct model"
    return "the GCN head does not beat the direct model"


def plane_noise(trials: pd.DataFrame, directs: pd.DataFrame, size: str, command: Command) -> str:
    """The clause on noise of a plane's answer: its two models at seeds, with the best trial's own point's
    direct model first (the reference of `imlgcn compare`); "" where the answer compares nothing."""
    best, match = answer_models(trials, directs, size)
    if best is None or match is None:
        return ""
    own = directs[(directs["backbone"] == best["backbone"])
                  & (directs["image_size"].astype(float) == float(best["image_size"]))]
    models = {f"direct-{model_name(d['backbone'], d['image_size'])}": {
        "backbone": str(d["backbone"]), "image_size": int(d["image_size"]), "embedding": "none"}
        for d in [*own.to_dict("records"), match.to_dict()]}  # own point's first; one arm per model
    first, *rest = models.items()
    arms = dict([first, (f"trial-{best['trial_id']}", trial_arm(best)), *rest])
    return one_seed(float(best["mAP"]) - float(match["mAP"]), command(arms))


def trial_arm(row: Mapping) -> dict[str, Any]:
    """A trial's searched values as an arm of `imlgcn compare` (the base config holds the rest)."""
    arm = {}
    for key in keys_of(SEARCH):
        value = row.get(key)
        if known(value) and value != "" and key_applies(key, row.get("embedding")):
            arm[key] = value.item() if hasattr(value, "item") else value
    return arm


def base_config(params: Mapping[str, str]) -> dict[str, Any] | None:
    """The study's base config from its parent run's params (typed), or None where they do not make one
    (a parent run without them, or keys this version does not know)."""
    try:
        return TrialConfig.from_dict(params).to_dict() if params else None
    except (ConfigError, TypeError, ValueError):
        return None


def compare_files(out: Path, study: str, base: dict[str, Any] | None) -> Command:
    """The command maker of a report written to `out`: it writes the arms (and the base config) there and
    returns the `imlgcn compare` command line that trains them at SEEDS."""
    import yaml

    def command(arms: dict[str, dict[str, Any]]) -> str:
        arms_file = out / "compare-arms.yaml"
        arms_file.write_text(yaml.safe_dump(arms, sort_keys=False))
        line = ["imlgcn", "compare", "--name", f"{study}-seeds"]
        if base is not None:
            base_file = out / "compare-base.yaml"
            base_file.write_text(yaml.safe_dump(base, sort_keys=False))
            line += ["--config", str(base_file)]
        line += ["--arms", str(arms_file), "--seeds", *map(str, SEEDS)]
        return shlex.join(line)

    return command


def same_size_note(trials: pd.DataFrame, baseline: pd.Series | None, size: str,
                   tolerance: float = SIZE_TOLERANCE) -> str:
    """A line for a front whose size axis is flat: every fine-tuned trial (and the direct model, when its size
    is known) has the same `size` within `tolerance`, as every head-only space has once the GCN is folded
    away; else ""."""
    tuned = trials.loc[eligible(trials), size].astype(float).dropna().tolist()
    with_direct = baseline is not None and known(baseline.get(size))
    sizes = tuned + ([float(baseline[size])] if with_direct else [])
    if size == "n_params" or not tuned or len(sizes) < 2 or not same_size(min(sizes), max(sizes), tolerance):
        return ""
    measure = SIZE_MEASURES[size]
    value = measure.text(sizes[0]) if min(sizes) == max(sizes) else \
        f"{measure.text(min(sizes))} to {measure.text(max(sizes))}, within {tolerance_text(tolerance)}"
    who = "every fine-tuned trial" + (" and the direct model" if with_direct else "")
    return (f"note: {who} {'have' if with_direct else 'has'} the same {measure.label} ({value}): the space "
            "searches only the head, which folds into a C x d linear layer at deployment, so the front is the "
            "best mAP; a space that searches backbones or resolutions trades accuracy for size; pass "
            "--size params for the paper's count (GCN weights included)")
