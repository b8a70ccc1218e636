"""Classifiers that learn a distribution over years and sum it into buckets."""

from pathlib import Path

import keras
import numpy as np
import pytest

from age_assets.ml.age_distribution import BUCKET_SUMS, YEARS, age_distribution_loss, bucket_accuracy, with_bucket_sums
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.ml.estimator import EstimatorSpec, train_estimator
from age_assets.ml.models import HeadSpec
from age_assets.ml.training import FitSpec
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


def test_bucket_sums_put_each_year_in_its_bucket_and_survive_saving(tmp_path: Path) -> None:
    assert (BUCKET_SUMS.argmax(axis=1) == age_to_bucket(np.arange(YEARS))).all()
    assert (BUCKET_SUMS.sum(axis=1) == 1).all()
    inputs = keras.Input((4,))
    model = with_bucket_sums(keras.Model(inputs, keras.layers.Dense(YEARS, activation="softmax")(inputs)))
    x = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    buckets = model.predict(x, verbose=0)
    assert buckets.shape == (5, len(BUCKET_LABELS)) and np.allclose(buckets.sum(axis=1), 1, atol=1e-5)
    assert not model.get_layer("head_bucket_sums").trainable_weights
    model.save(tmp_path / "m.keras")
    assert np.allclose(keras.saving.load_model(tmp_path / "m.keras").predict(x, verbose=0), buckets, atol=1e-6)


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.skipif(not V3_WEIGHTS.is_file(), reason="needs ImageNet weights for mobilenet_v3_small")
def test_classifier_over_years_learns_buckets_encoded_in_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, valid = (_stack(tmp_path, n, rng.uniform(1, 90, k).round()) for n, k in (("train", 240), ("valid", 80)))
    spec = EstimatorSpec("mobilenet_v3_small", str(V3_WEIGHTS), 32, HeadSpec(units=64, dropout=0.0), 0,
                         FitSpec(learning_rate=3e-3, epochs=40, patience=8, batch_size=32),
                         classes=len(BUCKET_LABELS), age_sigma=2.0)
    trained = train_estimator(spec, train, valid, {"valid": valid}, tmp_path / "cache", log=lambda m: None)
    probabilities = trained.predictions["valid"]
    assert probabilities.shape == (80, len(BUCKET_LABELS)) and np.allclose(probabilities.sum(axis=1), 1, atol=1e-4)
    truth = age_to_bucket(valid.targets)
    most_common = np.bincount(truth).max() / len(truth)
    accuracy = float(np.mean(probabilities.argmax(axis=1) == truth))
    assert accuracy > most_common + 0.2
    assert max(trained.history["val_accuracy"]) == pytest.approx(accuracy, abs=0.02), "fit's metric is bucket accuracy"
    assert trained.model.output_shape == (None, len(BUCKET_LABELS)), "the stored model outputs buckets"
