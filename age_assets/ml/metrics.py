"""Age-estimation metrics: MAE, cumulative score, ChaLearn epsilon error, bucket scores."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket


def mae(pred: np.ndarray, true: np.ndarray) -> float:
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(true, float))))


def cumulative_score(pred: np.ndarray, true: np.ndarray, years: float = 5) -> float:
    """CS(years): the share of predictions within ``years`` of the truth."""
    return float(np.mean(np.abs(np.asarray(pred, float) - np.asarray(true, float)) <= years))


def epsilon_error(pred: np.ndarray, mean: np.ndarray, std: np.ndarray) -> float:
    """ChaLearn LAP's apparent-age error: mean of 1 - exp(-(pred - mean)^2 / (2 std^2))."""
    std = np.maximum(np.asarray(std, float), 1e-6)
    return float(np.mean(1 - np.exp(-((np.asarray(pred, float) - mean) ** 2) / (2 * std**2))))


def bucket_scores(pred_buckets: np.ndarray, true_ages: np.ndarray) -> dict[str, object]:
    true_buckets = age_to_bucket(true_ages)
    labels = list(range(len(BUCKET_LABELS)))
    return {
        "accuracy": float(accuracy_score(true_buckets, pred_buckets)),
        "macro_f1": float(f1_score(true_buckets, pred_buckets, labels=labels, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(true_buckets, pred_buckets, labels=labels).tolist(),
    }


def mae_per_bucket(pred: np.ndarray, true: np.ndarray) -> dict[str, float | None]:
    buckets = age_to_bucket(true)
    err = np.abs(np.asarray(pred, float) - np.asarray(true, float))
    return {label: (float(err[buckets == i].mean()) if (buckets == i).any() else None)
            for i, label in enumerate(BUCKET_LABELS)}
