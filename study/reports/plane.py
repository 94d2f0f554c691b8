"""The paper's question on a study's accuracy-versus-size plane: which model is smallest for a given mAP,
and does the GCN head change that? Answered from the fine-tuned trials and the direct models (the
same-budget direct model of each (backbone, resolution) the study trained), pure pandas, tested on
hand-worked tables.

- The front is computed over the trials that ran all their epochs and the direct models together; a trial
  that a direct model dominates (its own backbone's or another's: at least as accurate and no larger,
  better in one; sizes within the tolerance are the same size, study.reports.ties) is marked with that
  model's name.
- Per (backbone, resolution): the best IML-GCN mAP minus that point's direct model's mAP.
- For the best IML-GCN point: the smallest direct model in the study with at least its mAP, and the size
  ratio; or that no direct model reaches it. Only another point's direct model that is larger, by more than
  the size tolerance, counts as "the head gives a smaller model": the folded head of the same point is
  smaller by the direct model's bias (C parameters), which is no gain of the GCN. Each model is trained once
  (one seed): the report adds to the answer what one seed cannot tell (study.reports.answer).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from study.reports.front_table import cell, size_cells
from study.reports.ties import SIZE_TOLERANCE, dominance, front, smaller
from trainables.embeddings import key_applies
from trainables.size_measures import SIZE_MEASURES


def model_name(backbone: str, image_size) -> str:
    """'resnet10t@64px': a point of the plane is a backbone at a resolution."""
    return f"{backbone}@{int(image_size)}px"


def is_plane(directs: pd.DataFrame) -> bool:
    """Whether a study has a plane: more than one (backbone, resolution) with its direct model."""
    return len(directs) > 1


def eligible(trials: pd.DataFrame) -> pd.Series:
    """The trials that count on the plane: fine-tuned, all their epochs (an early stop is no full result)."""
    return (trials["level"] == "finetune") & ~trials["stopped_early"].astype(bool)


def plane_front(trials: pd.DataFrame, directs: pd.DataFrame, size: str,
                tolerance: float = SIZE_TOLERANCE) -> tuple[np.ndarray, np.ndarray]:
    """Pareto masks (maximise mAP, minimise `size`, sizes within `tolerance` the same) of the trials and of
    the direct models, computed over the eligible trials and the direct models together."""
    mask = eligible(trials).to_numpy()
    points = pd.concat([trials.loc[mask, ["mAP", size]], directs[["mAP", size]]], ignore_index=True).astype(float)
    on_front = front(points["mAP"], points[size], tolerance)
    on_trials = np.zeros(len(trials), dtype=bool)
    on_trials[np.flatnonzero(mask)] = on_front[:mask.sum()]
    return on_trials, np.asarray(on_front[mask.sum():], dtype=bool)


def dominating_direct(trials: pd.DataFrame, directs: pd.DataFrame, size: str,
                      tolerance: float = SIZE_TOLERANCE) -> list[str]:
    """For each trial, the smallest direct model that dominates it, as 'direct <model>', or ""."""
    sizes = directs[size].astype(float)
    names = []
    for m_ap, value in zip(trials["mAP"].astype(float), trials[size].astype(float)):
        if not (np.isfinite(m_ap) and np.isfinite(value)):
            names.append("")
            continue
        beats = dominance([m_ap, *directs["mAP"].astype(float)], [value, *sizes], tolerance)[0, 1:]
        better = directs[beats]
        if len(better):
            row = better.assign(_size=sizes[better.index]).sort_values(["_size", "mAP"], ascending=[True, False]).iloc[0]
            names.append(f"direct {model_name(row['backbone'], row['image_size'])}")
        else:
            names.append("")
    return names


def gains(trials: pd.DataFrame, directs: pd.DataFrame) -> pd.DataFrame:
    """Per point with a direct model: its mAP, the best IML-GCN mAP on it and the difference (NaN where no
    IML-GCN trial of that point ran all its epochs)."""
    gcn = trials[eligible(trials) & (trials["embedding"] != "none")]
    rows = []
    for direct in directs.to_dict("records"):
        own = gcn[(gcn["backbone"] == direct["backbone"]) & (gcn["image_size"].astype(float) == float(direct["image_size"]))]
        best = float(own["mAP"].max()) if len(own) else float("nan")
        rows.append({"model": model_name(direct["backbone"], direct["image_size"]), "direct mAP": float(direct["mAP"]),
                     "best IML-GCN mAP": best, "difference": best - float(direct["mAP"]), "trials": len(own)})
    return pd.DataFrame(rows, columns=["model", "direct mAP", "best IML-GCN mAP", "difference", "trials"])


def answer_models(trials: pd.DataFrame, directs: pd.DataFrame, size: str) -> tuple[pd.Series | None, pd.Series | None]:
    """The two models the answer compares: the best IML-GCN trial (highest mAP, then smallest) and the
    smallest direct model whose mAP reaches it, else the most accurate direct model (None where missing)."""
    gcn = trials[eligible(trials) & (trials["embedding"] != "none")]
    if gcn.empty:
        return None, None
    best = gcn.sort_values(["mAP", size], ascending=[False, True]).iloc[0]
    if directs.empty:
        return best, None
    reaching = directs[directs["mAP"] >= best["mAP"]]
    if reaching.empty:
        return best, directs.sort_values("mAP", ascending=False).iloc[0]
    ordered = reaching.assign(_size=reaching[size].astype(float)).sort_values(["_size", "mAP"], ascending=[True, False])
    return best, ordered.iloc[0]


def answer(trials: pd.DataFrame, directs: pd.DataFrame, size: str, noise: str = "",
           tolerance: float = SIZE_TOLERANCE) -> str:
    """The sentence: the best IML-GCN point against the smallest direct model that reaches its mAP; `noise`
    (what one seed cannot tell) is added before its full stop."""
    text = _answer(trials, directs, size, tolerance)
    return f"{text[:-1]}; {noise}." if noise else text


def _answer(trials: pd.DataFrame, directs: pd.DataFrame, size: str, tolerance: float) -> str:
    measure = SIZE_MEASURES[size]
    label = measure.label
    best, match = answer_models(trials, directs, size)
    if best is None:
        return "No IML-GCN trial ran all its epochs: nothing to compare with the direct models yet."
    name = model_name(best["backbone"], best["image_size"])
    if match is None:
        return f"The best IML-GCN point is on {name} (mAP {best['mAP']:.2f}); the study has no direct model to compare."
    if match["mAP"] < best["mAP"]:
        top = match
        return (f"No direct model in the study reaches the best IML-GCN mAP {best['mAP']:.2f} (IML-GCN on {name}, "
                f"{measure.text(float(best[size]))} {label}); the best direct model, on "
                f"{model_name(top['backbone'], top['image_size'])}, reaches {top['mAP']:.2f}.")
    ratio = float(best[size]) / float(match[size])
    other = model_name(match["backbone"], match["image_size"])
    if smaller(float(best[size]), float(match[size]), tolerance) and other != name:  # another point's, larger
        return (f"IML-GCN on {name} (mAP {best['mAP']:.2f}) matches the direct model on {other} (mAP "
                f"{match['mAP']:.2f}) at {ratio:.2f}x its {label} ({measure.text(float(best[size]))} against "
                f"{measure.text(float(match[size]))}): the GCN head reaches that mAP with a smaller model.")
    return (f"The direct model on {other} (mAP {match['mAP']:.2f}) reaches the best IML-GCN mAP {best['mAP']:.2f} "
            f"(on {name}) with {measure.text(float(match[size]))} {label}, {1 / ratio:.2f}x IML-GCN's "
            f"{measure.text(float(best[size]))}: in this study the GCN head gives no smaller model for that mAP.")


def plane_rows(front: pd.DataFrame, directs: pd.DataFrame, direct_front: np.ndarray, searched: list[str],
               size: str) -> pd.DataFrame:
    """The printed table: every direct model (by size, `front` = on the plane's front), then the front's
    trials by size with their mAP against their own point's direct model."""
    sizes = size_cells(size)
    rows = []
    ordered = directs.assign(_front=direct_front, _size=directs[size].astype(float)).sort_values("_size")
    for direct in ordered.to_dict("records"):
        point = {"backbone": direct["backbone"], "image_size": str(int(direct["image_size"]))}
        rows.append({"model": f"direct {model_name(direct['backbone'], direct['image_size'])}",
                     **{k: point.get(k, "-") for k in searched}, "mAP": f"{direct['mAP']:.2f}",
                     "vs own direct": "", **sizes(direct), "front": "yes" if direct["_front"] else ""})
    for trial in front.assign(_size=front[size].astype(float)).sort_values(["_size", "trial_id"]).to_dict("records"):
        own = trial.get("direct_mAP")
        rows.append({"model": f"trial {trial['trial_id']}",
                     **{k: cell(k, trial.get(k)) if key_applies(k, trial.get("embedding")) else "-" for k in searched},
                     "mAP": f"{trial['mAP']:.2f}", "vs own direct": f"{trial['mAP'] - own:+.2f}" if own == own else "",
                     **sizes(trial), "front": "yes"})
    return pd.DataFrame(rows)


def format_plane(trials: pd.DataFrame, directs: pd.DataFrame, direct_front: np.ndarray, searched: list[str],
                 size: str, screened: int = 0, noise: str = "", tolerance: float = SIZE_TOLERANCE) -> str:
    """Title, the front table with every direct model, the per-point gains and the answer sentence."""
    front = trials[trials["pareto"]]
    tuned = int(eligible(trials).sum())
    title = (f"Pareto front over {tuned} fine-tuned trials and {len(directs)} direct models"
             + (f" ({screened} head configurations screened first)" if screened else "")
             + f", on mAP and {SIZE_MEASURES[size].label}: {len(front)} trials and {int(direct_front.sum())} direct models")
    table = plane_rows(front, directs, direct_front, searched, size).to_string(index=False)
    per_point = gains(trials, directs)
    shown = per_point.assign(**{"direct mAP": per_point["direct mAP"].map("{:.2f}".format),
                                "best IML-GCN mAP": per_point["best IML-GCN mAP"].map(lambda v: f"{v:.2f}" if v == v else "-"),
                                "difference": per_point["difference"].map(lambda v: f"{v:+.2f}" if v == v else "-")})
    per_point_text = shown.to_string(index=False)
    return "\n".join([title, table, "The GCN head on each point (best IML-GCN mAP minus that point's direct model):",
                      per_point_text, answer(trials, directs, size, noise, tolerance)])
