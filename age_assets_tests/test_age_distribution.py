"""Classifiers that learn a distribution over years and sum it into buckets."""

from pathlib import Path

import keras
import numpy as np
import pytest

from age_assets.ml.age_distribution import BUCKET_SUMS, YEARS, age_distribution_loss, bucket_accuracy, median_age
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.ml.estimator import train_estimator
from age_assets.ml.metrics import mae
from age_assets.ml.specs import EstimatorSpec, FitSpec, HeadSpec
from age_assets_tests.conftest import SHARED_WEIGHTS
from age_assets_tests.test_models import _stack

V3_WEIGHTS = SHARED_WEIGHTS / "mobilenet_v3_small.weights.h5"


def _peaked(ages: list[float], width: float = 1.5) -> np.ndarray:
    years = np.arange(YEARS)
    p = np.exp(-0.5 * ((years[None, :] - np.array(ages)[:, None]) / width) ** 2)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def test_loss_is_lowest_for_the_distribution_around_the_true_age_and_finite_past_the_last_year() -> None:
    loss = age_distribution_loss(2.0)
    ages = np.array([30.0, 30.0, 30.0, 116.0])
    values = np.asarray(loss(ages, _peaked([30, 34, 60, 100])))
    assert values[0] < values[1] < values[2]
    assert np.isfinite(values).all() and values[3] < values[2]


def test_bucket_accuracy_counts_the_summed_bucket_against_the_true_ages_bucket() -> None:
    boundary_ages = [2, 3, 9, 10, 20, 21, 27, 28, 45, 46, 65, 66, 116]
    metric = bucket_accuracy()
    metric.update_state(np.array(boundary_ages, dtype=np.float32), _peaked([min(a, 100) for a in boundary_ages], 0.3))
    assert float(metric.result()) == 1.0
    metric.reset_state()
    metric.update_state(np.array([27.0, 28.0]), _peaked([29, 29], 0.3))
    assert float(metric.result()) == 0.5
    assert metric.name == "accuracy"


def test_bucket_sums_put_each_year_in_its_bucket() -> None:
    assert (BUCKET_SUMS.argmax(axis=1) == age_to_bucket(np.arange(YEARS))).all()
    assert (BUCKET_SUMS.sum(axis=1) == 1).all()


def test_median_age_interpolates_inside_the_year_where_half_the_probability_is_reached() -> None:
    distributions = np.zeros((4, YEARS), np.float32)
    distributions[0, 30] = 1.0
    distributions[1, [30, 31]] = 0.5
    distributions[2, [10, 20, 40]] = [0.2, 0.6, 0.2]
    distributions[3, [0, 100]] = [0.25, 0.75]
    medians = keras.ops.convert_to_numpy(median_age(distributions))
    # year y covers [y - 0.5, y + 0.5]: all of year 30; the end of year 30; the middle of year 20;
    # a third of the way into year 100
    assert np.allclose(medians, [30.0, 30.5, 20.0, 99.5 + 1 / 3], atol=1e-4)
    rng = np.random.default_rng(0)
    samples = keras.ops.convert_to_numpy(keras.ops.softmax(rng.normal(size=(50, YEARS)).astype(np.float32) * 3))
    cumulative = np.cumsum(samples, axis=1)
    assert (np.abs(keras.ops.convert_to_numpy(median_age(samples)) - (cumulative < 0.5).sum(axis=1)) <= 0.5).all()


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.skipif(not V3_WEIGHTS.is_file(), reason="needs ImageNet weights for mobilenet_v3_small")
def test_classifier_over_years_learns_buckets_encoded_in_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, valid = (_stack(tmp_path, n, rng.uniform(1, 90, k).round()) for n, k in (("train", 240), ("valid", 80)))
    spec = EstimatorSpec(backbone="mobilenet_v3_small", weights=str(V3_WEIGHTS), image_size=32,
                         head=HeadSpec(units=64, dropout=0.0),
                         fit=FitSpec(learning_rate=3e-3, epochs=40, patience=8, batch_size=32),
                         classes=len(BUCKET_LABELS), age_sigma=2.0)
    trained = train_estimator(spec, train, valid, {"valid": valid}, tmp_path / "cache", log=lambda m: None)
    probabilities = trained.predictions["valid"]
    assert probabilities.shape == (80, len(BUCKET_LABELS)) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    truth = age_to_bucket(valid.targets)
    most_common = np.bincount(truth).max() / len(truth)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == truth))
    assert accuracy > most_common + 0.2
    assert max(trained.history["val_accuracy"]) == pytest.approx(accuracy, abs=0.02), "fit's metric is bucket accuracy"
    assert trained.model.output_shape == (None, YEARS), "the stored model outputs the distribution over years"
    assert trained.ages is not None and trained.ages["valid"].shape == (80,)
    assert mae(trained.ages["valid"], valid.targets) < 0.6 * mae(np.full(80, valid.targets.mean()), valid.targets)
