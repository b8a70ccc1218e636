"""For whom the model is worse: test-split metrics per gender, per race and per age band."""

from __future__ import annotations

import numpy as np
import pandas as pd

from age_assets.datasets.manifest import GENDERS, RACES
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.ml.metrics import cumulative_score, mae

GAP = 0.15
"""A group whose MAE exceeds the overall MAE by more than this share is named as worse served."""


def _scores(pred: np.ndarray, real: np.ndarray) -> dict[str, float | int]:
    return {"faces": len(real), "mae": mae(pred, real), "cs5": cumulative_score(pred, real, 5),
            "bucket_accuracy": float(np.mean(age_to_bucket(pred) == age_to_bucket(real)))}


def group_columns(labels: pd.DataFrame) -> dict[str, pd.Series]:
    """Per grouping, each face's group name (NaN where its source names none); a grouping that
    no face has (APPA-REAL and FG-NET name neither gender nor race) is left out."""
    real = labels["real_age"].to_numpy(float)
    columns = {"age band": pd.Series(np.asarray(BUCKET_LABELS)[age_to_bucket(real)], index=labels.index)}
    for column, names in (("gender", GENDERS), ("race", RACES)):
        if column in labels and labels[column].notna().any():
            columns[column] = labels[column].map(dict(enumerate(names)))
    return columns


def group_report(pred: np.ndarray, labels: pd.DataFrame, gap: float = GAP) -> dict[str, object]:
    """Overall and per-group MAE, CS(5), bucket accuracy and face counts, and the groups whose MAE is
    more than ``gap`` above the overall (``"grouping: group"``, worst first)."""
    pred, real = np.asarray(pred, float), labels["real_age"].to_numpy(float)
    overall = _scores(pred, real)
    groups: dict[str, dict[str, dict[str, float | int]]] = {}
    for grouping, names in group_columns(labels).items():
        present = set(names.dropna())
        order = [n for n in (*BUCKET_LABELS, *GENDERS, *RACES) if n in present]
        groups[grouping] = {str(n): _scores(pred[mask], real[mask])
                            for n in order for mask in [(names == n).to_numpy()]}
    worse = [(scores["mae"], f"{grouping}: {name}") for grouping, table in groups.items()
             for name, scores in table.items() if scores["mae"] > (1 + gap) * overall["mae"]]
    return {"overall": overall, "groups": groups, "gap": gap,
            "above_overall": [name for _, name in sorted(worse, reverse=True)]}


def markdown_groups(groups: dict) -> str:
    """The group report as markdown tables, each group's MAE against the overall."""
    overall = groups["overall"]
    lines = [f"Overall: MAE {overall['mae']:.2f} years, CS(5) {overall['cs5']:.3f}, bucket accuracy "
             f"{overall['bucket_accuracy']:.3f} on {overall['faces']} faces.", ""]
    for grouping, table in groups["groups"].items():
        lines += [f"| {grouping} | faces | MAE | CS(5) | bucket accuracy | MAE / overall |", "|---" * 6 + "|"]
        lines += [f"| {name} | {s['faces']} | {s['mae']:.2f} | {s['cs5']:.3f} | {s['bucket_accuracy']:.3f} | "
                  f"{s['mae'] / overall['mae']:.2f} |" for name, s in table.items()]
        lines.append("")
    worse = groups["above_overall"]
    lines.append(f"MAE more than {groups['gap']:.0%} above the overall: {', '.join(worse) or 'none'}.")
    return "\n".join(lines) + "\n"
