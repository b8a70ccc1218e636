"""Age buckets from everything the graph trained: the ensemble's age and the classifiers' probabilities.

A multinomial logistic regression, fitted on the validation split as the ensemble's weights are,
reads a spline of the ensemble's age next to the log of the classifiers' averaged probabilities.
The regressors know an age to within a few years but not on which side of a bucket edge it falls;
the classifiers were trained on exactly those edges. Together they beat either alone.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import SplineTransformer

from age_assets.ml.buckets import BUCKET_LABELS

FLOOR = 1e-6
"""Probabilities are clipped to this before their log, so a confident zero stays finite."""


def stacking_inputs(ages: np.ndarray, probabilities: list[np.ndarray]) -> np.ndarray:
    """[N, 1 + buckets]: the ensemble's age, then the log of the classifiers' mean probabilities."""
    averaged = np.mean(probabilities, axis=0)
    return np.column_stack([ages, np.log(np.clip(averaged, FLOOR, 1.0))])


def bucket_stacker(knots: int = 12) -> Pipeline:
    spline = ColumnTransformer([("age", SplineTransformer(n_knots=knots, knots="quantile"), [0])],
                               remainder="passthrough")
    return make_pipeline(spline, LogisticRegression(C=1.0, max_iter=5000))


def all_buckets(stacker: Pipeline, inputs: np.ndarray) -> np.ndarray:
    """[N, 7] probabilities, zero for a bucket the validation split never showed the stacker."""
    probabilities = np.zeros((len(inputs), len(BUCKET_LABELS)))
    probabilities[:, stacker.classes_] = stacker.predict_proba(inputs)
    return probabilities


def cross_validated_accuracy(inputs: np.ndarray, buckets: np.ndarray, folds: int = 5) -> float | None:
    """Accuracy on held-out folds of the validation split; None where a bucket is too rare to fold."""
    if np.bincount(buckets)[np.unique(buckets)].min() < folds:
        return None
    split = StratifiedKFold(folds, shuffle=True, random_state=0)
    return float(np.mean(cross_val_predict(bucket_stacker(), inputs, buckets, cv=split) == buckets))
