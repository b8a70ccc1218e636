"""Combining regressors with non-negative weights fitted on the validation split."""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LinearRegression


def fit_weights(member_predictions: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Non-negative least-squares weights, one per column of ``member_predictions`` [N, M].

    No intercept and no sum-to-one constraint: the weights may also correct a shared bias in scale.
    """
    regression = LinearRegression(positive=True, fit_intercept=False).fit(member_predictions, targets)
    weights = regression.coef_.astype(float)
    if not weights.any():  # every member anti-correlated with the targets: fall back to the mean
        weights = np.full(member_predictions.shape[1], 1 / member_predictions.shape[1])
    return weights


def combine(member_predictions: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return member_predictions @ weights
