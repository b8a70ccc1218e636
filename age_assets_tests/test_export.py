"""The exported model: the bucket stacker in Keras operations, the assembled members, the runtimes."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.pipeline import Pipeline

from age_assets.ml.bucket_stacking import all_buckets, bucket_stacker, stacking_inputs
from age_assets.serving.runtime import DESCRIPTION, ExportedModel, ModelLoadError


def _fitted_stacker(seed: int, buckets: list[int]) -> tuple[Pipeline, np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    n = 600
    truth = rng.choice(buckets, n)
    ages = np.array([5, 8, 15, 24, 36, 55, 75], dtype=float)[truth] + rng.normal(0, 4, n)
    probabilities = [rng.dirichlet(np.ones(7), n) for _ in range(2)]
    inputs = stacking_inputs(ages, probabilities)
    return bucket_stacker().fit(inputs, truth), ages, probabilities


@pytest.mark.parametrize("buckets", [list(range(7)), [1, 2, 4, 5], [3, 4]], ids=["all", "some", "two"])
def test_stacker_in_keras_equals_scikit_learn(buckets: list[int]) -> None:
    from keras import ops

    from age_assets.ml.export import _stacked_buckets

    stacker, ages, probabilities = _fitted_stacker(0, buckets)
    ages = np.concatenate([ages, [-20.0, 0.0, 130.0, ages.min(), ages.max()]])  # beyond the knots: constant
    probabilities = [np.concatenate([p, np.random.default_rng(1).dirichlet(np.ones(7), 5)]) for p in probabilities]
    expected = all_buckets(stacker, stacking_inputs(ages, probabilities))
    mean_probabilities = np.mean(probabilities, axis=0).astype(np.float32)
    got = ops.convert_to_numpy(_stacked_buckets(stacker, ops.convert_to_tensor(ages.astype(np.float32)),
                                                ops.convert_to_tensor(mean_probabilities)))
    assert got.shape == (len(ages), 7)
    assert np.abs(got - expected).max() < 1e-4
    assert np.all(got[:, [b for b in range(7) if b not in buckets]] == 0)


@pytest.mark.slow
def test_inference_model_combines_members_like_the_graph() -> None:
    """Members with mirror averaging, member weights and averaged classifiers, checked against the
    same arithmetic done by hand with each member alone."""
    import keras

    from age_assets.ml.age_distribution import BUCKET_SUMS, YEARS, median_age
    from age_assets.ml.backbones import get_backbone
    from age_assets.ml.estimator import predict_images
    from age_assets.ml.export import Member, inference_model
    from age_assets.ml.models import build_model
    from age_assets.ml.specs import HeadSpec

    size = 32
    rng = np.random.default_rng(0)
    faces = rng.integers(0, 256, (5, size, size, 3), dtype=np.uint8)
    spec = get_backbone("mobilenet_v2")

    def member(classes: int, mirror: bool, seed: int, **roles: Any) -> Member:
        keras.utils.set_random_seed(seed)  # the same seed, the same frozen backbone weights
        model = build_model("mobilenet_v2", size, None, HeadSpec(units=8, dropout=0, output="linear"), 0, classes)
        return Member(model=model, scale=spec.scale, offset=spec.offset, mirror_average=mirror, **roles)

    regressors = [member(0, True, seed=1, age_weight=0.7), member(0, False, seed=2, age_weight=0.4)]
    over_buckets = member(7, True, seed=1, buckets=True)
    over_years = member(YEARS, True, seed=3, age_weight=0.2, buckets=True)
    unused = member(0, True, seed=4)
    stacker, _, _ = _fitted_stacker(0, list(range(7)))
    model = inference_model(size, [*regressors, over_buckets, over_years, unused], stacker)
    out = model.predict_on_batch(faces)
    fronts = [layer for layer in model.layers if layer.name.endswith("_front")]
    assert len(fronts) == 3, "members with equal frozen backbones share a front; a member with no role is left out"

    def alone(m: Member) -> np.ndarray:
        return predict_images(m.model, spec.preprocess_input, faces, m.mirror_average)

    years = alone(over_years)
    expected_age = (0.7 * alone(regressors[0]).reshape(-1) + 0.4 * alone(regressors[1]).reshape(-1)
                    + 0.2 * keras.ops.convert_to_numpy(median_age(years)))
    expected_buckets = all_buckets(stacker, stacking_inputs(expected_age, [alone(over_buckets), years @ BUCKET_SUMS]))
    assert np.abs(out["age"] - expected_age).max() < 1e-4
    assert np.abs(out["buckets"] - expected_buckets).max() < 1e-4
    larger = np.stack([np.kron(f, np.ones((2, 2, 1), np.uint8)) for f in faces])  # 64 px: resized back inside
    assert np.abs(model.predict_on_batch(larger)["age"] - expected_age).max() < 1e-3


def test_a_missing_or_damaged_export_names_the_file_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"age_estimator.tflite: exported model file is missing.*exported_model"):
        ExportedModel(tmp_path / "age_estimator.tflite")
    (tmp_path / DESCRIPTION).write_text(json.dumps({"image_size": 32, "bucket_labels": ["a"] * 7}))
    for name in ("age_estimator.tflite", "age_estimator.onnx"):
        (tmp_path / name).write_bytes(b"\x00" * 64)
        with pytest.raises(ModelLoadError, match=rf"{name}: cannot be loaded.*dg launch --assets exported_model"):
            ExportedModel(tmp_path / name)
    (tmp_path / DESCRIPTION).write_text("{")
    with pytest.raises(ModelLoadError, match=rf"{DESCRIPTION}: cannot read"):
        ExportedModel(tmp_path / "age_estimator.onnx")


def test_a_runtime_that_is_not_installed_is_named_with_its_install(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / DESCRIPTION).write_text(json.dumps({"image_size": 32, "bucket_labels": ["a"] * 7}))
    (tmp_path / "age_estimator.onnx").write_bytes(b"\x00" * 64)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import raises ModuleNotFoundError, as without it
    with pytest.raises(ModelLoadError, match=r"age_estimator.onnx: running it needs onnxruntime.*age_assets\[onnx\]"):
        ExportedModel(tmp_path / "age_estimator.onnx")
