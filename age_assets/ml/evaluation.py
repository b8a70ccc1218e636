"""Test-split metrics for regressors and bucket classifiers, and the markdown report."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.ml.groups import markdown_groups
from age_assets.ml.metrics import bucket_scores, cumulative_score, epsilon_error, mae, mae_per_bucket

STUDY = {
    "validation MAE, MobileNetV3Small (years)": 7.0,
    "validation MAE, NASNetMobile (years)": 9.0,
    "bucket accuracy, MobileNetV3Small": 0.55,
    "bucket accuracy, NASNetMobile": 0.45,
    "published APPA-REAL MAE (years)": "4-5",
}
"""The numbers of the study this project grows from, on APPA-REAL, for comparison."""


def has_votes(labels: pd.DataFrame) -> bool:
    return bool(labels["apparent_age_mean"].notna().all())


def regressor_metrics(pred: np.ndarray, labels: pd.DataFrame) -> dict[str, object]:
    real = labels["real_age"].to_numpy(float)
    buckets = bucket_scores(age_to_bucket(pred), real)
    metrics: dict[str, object] = {
        "mae": mae(pred, real),
        "cs5": cumulative_score(pred, real, 5),
        "bucket_accuracy": buckets["accuracy"],
        "bucket_macro_f1": buckets["macro_f1"],
        "mae_per_bucket": mae_per_bucket(pred, real),
        "confusion_matrix": buckets["confusion_matrix"],
    }
    if has_votes(labels):
        mean, std = labels["apparent_age_mean"].to_numpy(float), labels["apparent_age_std"].to_numpy(float)
        metrics |= {"mae_apparent": mae(pred, mean), "epsilon_error": epsilon_error(pred, mean, std)}
    return metrics


def classifier_metrics(pred_buckets: np.ndarray, labels: pd.DataFrame) -> dict[str, Any]:
    return bucket_scores(pred_buckets, labels["real_age"].to_numpy(float))


def _cell(value: object) -> str:
    return f"{value:.3f}" if isinstance(value, float) else ("" if value is None else str(value))


def markdown_report(report: dict) -> str:
    """The report as markdown: regressors, classifiers, the ensemble per group, the study's numbers."""
    lines = [f"# Evaluation on the test split ({report['dataset']['test_images']} images)", ""]
    columns = ["mae", "cs5", "bucket_accuracy", "bucket_macro_f1"]
    if report["dataset"]["has_apparent_age"]:
        columns += ["mae_apparent", "epsilon_error"]
    lines += ["## Ages (MAE on real age, years; a classifier's age is the median of its distribution over years)",
              "", "| model | " + " | ".join(columns) + " |",
              "|---" * (len(columns) + 1) + "|"]
    for name, m in report["ages"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(m.get(c)) for c in columns) + " |")
    lines += ["", "MAE per true-age bucket:", "", "| model | " + " | ".join(BUCKET_LABELS) + " |",
              "|---" * (len(BUCKET_LABELS) + 1) + "|"]
    for name, m in report["ages"].items():
        lines.append(f"| {name} | " + " | ".join(_cell(m["mae_per_bucket"][b]) for b in BUCKET_LABELS) + " |")
    lines += ["", "## Bucket classifiers", "", "| model | accuracy | macro_f1 |", "|---|---|---|"]
    for name, m in report["classifiers"].items():
        lines.append(f"| {name} | {_cell(m['accuracy'])} | {_cell(m['macro_f1'])} |")
    if "groups" in report:
        lines += ["", "## The ensemble per group (for whom it is worse)", "", markdown_groups(report["groups"])]
    lines += ["", "## The study, for comparison (APPA-REAL)", "", "| measure | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in STUDY.items()]
    return "\n".join(lines) + "\n"
