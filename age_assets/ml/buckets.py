"""The study's seven age buckets."""

from __future__ import annotations

import numpy as np

BUCKET_LABELS: tuple[str, ...] = ("0-2", "3-9", "10-20", "21-27", "28-45", "46-65", "66+")
BUCKET_UPPER_AGES = np.array([2, 9, 20, 27, 45, 65])
"""Inclusive upper age of each bucket but the last."""


def age_to_bucket(ages: np.ndarray | float) -> np.ndarray:
    """Bucket index (0-6) of each age; fractional ages (predictions) round to the nearest year first."""
    years = np.rint(np.asarray(ages, dtype=float))
    return np.searchsorted(BUCKET_UPPER_AGES, years, side="left").astype(np.int64)
