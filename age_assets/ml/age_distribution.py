"""Bucket classifiers that learn a distribution over every year of age (label distribution learning).

A softmax over the seven buckets is taught that a 27-year-old differs from a 28-year-old as much as
from a 2-year-old. A softmax over the years 0-100, taught with a narrow Gaussian around each true age,
learns which ages are neighbours; summed per bucket, its probabilities say on which side of a bucket's
edge a face most likely falls. Its median is an age estimate of its own, which the regression
ensemble takes as a member.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np
from keras import ops

from age_assets.ml.buckets import BUCKET_UPPER_AGES, age_to_bucket
from age_assets.ml.models import MAX_OUTPUT_AGE

YEARS = int(MAX_OUTPUT_AGE) + 1
"""Classes of the distribution: every whole year from 0 to MAX_OUTPUT_AGE."""

BUCKET_SUMS = np.eye(len(BUCKET_UPPER_AGES) + 1, dtype=np.float32)[age_to_bucket(np.arange(YEARS))]
"""[YEARS, buckets]: probabilities over years times this are probabilities over buckets."""

_EARLIER_YEARS = np.triu(np.ones((YEARS, YEARS), dtype=np.float32), k=1)
"""[YEARS, YEARS]: probabilities over years times this give, per year, the probability of every earlier year."""


def age_distribution_loss(sigma: float) -> Callable:
    """Cross-entropy against a Gaussian of width ``sigma`` years around each true age, over 0-MAX_OUTPUT_AGE.

    Ages beyond MAX_OUTPUT_AGE are taken as MAX_OUTPUT_AGE, so the target never underflows to nothing.
    """
    years = np.arange(YEARS, dtype=np.float32)[None, :]

    def age_distribution(ages: object, probabilities: object) -> object:
        clipped = ops.clip(ops.reshape(ops.cast(ages, "float32"), (-1, 1)), 0.0, MAX_OUTPUT_AGE)
        target = ops.exp(-0.5 * ops.square((years - clipped) / sigma))
        target = target / ops.sum(target, axis=1, keepdims=True)
        return -ops.sum(target * ops.log(ops.clip(probabilities, 1e-7, 1.0)), axis=1)

    return age_distribution


def _bucket_hits(ages: object, probabilities: object) -> object:
    ages = ops.reshape(ops.round(ops.cast(ages, "float32")), (-1, 1))
    truth = ops.sum(ops.cast(ages > ops.convert_to_tensor(BUCKET_UPPER_AGES, "float32"), "int32"), axis=1)
    predicted = ops.cast(ops.argmax(ops.matmul(probabilities, ops.convert_to_tensor(BUCKET_SUMS)), axis=1), "int32")
    return ops.cast(ops.equal(truth, predicted), "float32")


def bucket_accuracy() -> keras.metrics.Metric:
    """Bucket accuracy of a distribution over years against true ages; named like Keras' ``accuracy``."""
    return keras.metrics.MeanMetricWrapper(_bucket_hits, name="accuracy")


def median_age(probabilities: object) -> object:
    """The median age of distributions over years ``[N, YEARS]``, each year spread evenly over the
    year either side of it: ``[N]``, in Keras operations (NumPy arrays in, tensors out).

    Year ``y`` covers ``[y - 0.5, y + 0.5]``; the median lies where the cumulative probability
    reaches one half, interpolated inside its year. Each year adds the share of its width that lies
    below the median: all of it before, a fraction in the year of the median, none after.
    """
    probabilities = ops.convert_to_tensor(probabilities, "float32")
    below = ops.matmul(probabilities, _EARLIER_YEARS)
    share = ops.clip((0.5 - below) / ops.maximum(probabilities, 1e-12), 0.0, 1.0)
    return ops.sum(share, axis=1) - 0.5
