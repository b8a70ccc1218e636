import numpy as np
import pytest

from age_assets.ml.bucket_stacking import all_buckets, bucket_stacker, cross_validated_accuracy, stacking_inputs
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket


@pytest.mark.parametrize("age, label", [
    (0, "0-2"), (2, "0-2"), (3, "3-9"), (9, "3-9"), (10, "10-20"), (20, "10-20"), (21, "21-27"),
    (27, "21-27"), (28, "28-45"), (45, "28-45"), (46, "46-65"), (65, "46-65"), (66, "66+"), (116, "66+"),
])
def test_every_boundary_age(age: int, label: str) -> None:
    assert BUCKET_LABELS[int(age_to_bucket(age))] == label


def test_predictions_round_to_the_nearest_year() -> None:
    assert age_to_bucket(np.array([2.49, 2.5001, 65.4, 65.6, -3.0, 140.0])).tolist() == [0, 1, 5, 6, 0, 6]


def _noisy_views(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True buckets, a regressor's age (right to within years) and a classifier's probabilities
    (often unsure, but trained on the bucket edges)."""
    ages = rng.uniform(0, 90, n).round()
    buckets = age_to_bucket(ages)
    predicted_age = ages + rng.normal(0, 5, n)
    logits = rng.normal(0, 1.0, (n, len(BUCKET_LABELS)))
    logits[np.arange(n), buckets] += 1.2
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return buckets, predicted_age, probabilities


def test_bucket_stacker_beats_the_regressor_and_the_classifier_alone() -> None:
    rng = np.random.default_rng(0)
    valid, test = _noisy_views(rng, 3000), _noisy_views(rng, 3000)
    stacker = bucket_stacker().fit(stacking_inputs(valid[1], [valid[2]]), valid[0])
    stacked = all_buckets(stacker, stacking_inputs(test[1], [test[2]])).argmax(axis=1)
    truth = test[0]
    by_age = np.mean(age_to_bucket(test[1]) == truth)
    by_classifier = np.mean(test[2].argmax(axis=1) == truth)
    assert np.mean(stacked == truth) > max(by_age, by_classifier) + 0.02
    held_out = cross_validated_accuracy(stacking_inputs(valid[1], [valid[2]]), valid[0])
    assert held_out is not None and abs(held_out - np.mean(stacked == truth)) < 0.05


def test_bucket_stacker_gives_every_bucket_a_column_even_unseen_ones() -> None:
    rng = np.random.default_rng(1)
    buckets, ages, probabilities = _noisy_views(rng, 400)
    keep = buckets != 0
    inputs = stacking_inputs(ages[keep], [probabilities[keep]])
    stacker = bucket_stacker().fit(inputs, buckets[keep])
    out = all_buckets(stacker, inputs)
    assert out.shape == (keep.sum(), len(BUCKET_LABELS))
    assert np.allclose(out.sum(axis=1), 1) and not out[:, 0].any()
    assert cross_validated_accuracy(inputs[:12], buckets[keep][:12]) is None, "too few per bucket to fold"
