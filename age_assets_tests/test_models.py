"""Model building, the frozen-boundary split, learning on generated faces, weights errors."""

import os
import shutil
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import pytest

from age_assets.ml.backbones import BACKBONES, INPUT_LAYERS, WeightsUnavailable, build_backbone, get_backbone
from age_assets.ml.estimator import Stack, predict_stack, train_estimator
from age_assets.ml.features import feature_files, model_input, write_features
from age_assets.ml.metrics import mae
from age_assets.ml.models import AgeScale, build_model, cut_at_frozen_boundary
from age_assets.ml.npy import StackWriter
from age_assets.ml.specs import EstimatorSpec, FitSpec, HeadSpec
from age_assets.ml.training import StackBatches, TrainingDiverged, TrainingStalled, fit, learning_rate
from age_assets.ml.weights import weights_identity, weights_source
from age_assets_tests.conftest import SHARED_WEIGHTS, synthetic_face

V3_WEIGHTS = SHARED_WEIGHTS / "mobilenet_v3_small.weights.h5"


@pytest.mark.parametrize("train_last, boundary_layers", [(0, 1), (3, 1), (10, 3)])
def test_cached_path_predicts_what_the_full_model_predicts(train_last: int, boundary_layers: int) -> None:
    model = build_model("mobilenet_v3_small", 64, None, HeadSpec(units=16), train_last)
    cut = cut_at_frozen_boundary(model)
    assert len(cut.boundary) == boundary_layers
    x = np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 3)).astype("float32")
    features = cut.front.predict(x, verbose=0)
    assert np.allclose(cut.tail.predict(features, verbose=0), model.predict(x, verbose=0), atol=1e-5)
    assert {w.path for w in cut.tail.trainable_weights} == {w.path for w in model.trainable_weights}


def test_frozen_backbone_caches_pooled_vectors_and_batch_norm_never_trains() -> None:
    model = build_model("mobilenet_v2", 64, None, HeadSpec(units=8), 0)
    assert cut_at_frozen_boundary(model).boundary == ["head_pool"]
    full = build_model("mobilenet_v2", 64, None, HeadSpec(units=8), -1)
    cut = cut_at_frozen_boundary(full)
    assert cut.front is None and cut.boundary == []
    assert not any(isinstance(layer, keras.layers.BatchNormalization) and layer.trainable for layer in full.layers)
    assert any(isinstance(layer, keras.layers.Conv2D) and layer.trainable for layer in full.layers)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", sorted(BACKBONES))
def test_every_backbone_builds_cuts_at_each_kind_of_boundary_and_trains_a_step(backbone: str) -> None:
    """Random weights at a small size: pooled vectors (frozen backbone), feature maps (its last
    layers train; one step of training here), nothing cached (every layer trains)."""
    size = 32
    x = np.random.default_rng(0).uniform(0, 255, (4, size, size, 3)).astype("float32")
    for train_last, cached in ((0, "pooled"), (-1, None), (20, "maps")):
        model = build_model(backbone, size, None, HeadSpec(units=4), train_last, scale=AgeScale(30.0, 10.0))
        cut = cut_at_frozen_boundary(model)
        if cached is None:  # at most input scaling (EfficientNet's Normalization, caffe_input) stays in front
            assert cut.front is None or not any(
                isinstance(layer, keras.layers.Conv2D) and layer.name not in INPUT_LAYERS for layer in cut.front.layers)
            continue
        assert (cut.boundary == ["head_pool"]) == (cached == "pooled"), cut.boundary
        features = cut.front(x)
        assert np.allclose(cut.tail(features), model(x), atol=1e-4)
    before = [w.copy() for w in cut.tail.get_weights()]
    fit(cut.tail, (features, np.array([20, 30, 40, 50], np.float32)), (features, np.full(4, 35.0)),
        FitSpec(epochs=1, batch_size=4), "mae")
    assert any(not np.array_equal(a, b) for a, b in zip(before, cut.tail.get_weights())), "one step changed weights"


def test_a_regressor_starts_at_the_training_mean_whatever_its_input() -> None:
    x = np.random.default_rng(0).uniform(0, 255, (5, 32, 32, 3)).astype("float32")
    for output in ("sigmoid", "linear", "expectation"):
        model = build_model("mobilenet_v2", 32, None, HeadSpec(units=8, output=output), 0, scale=AgeScale(41.5, 17.0))
        assert np.allclose(model.predict(x, verbose=0), 41.5, atol=1e-3), output


@pytest.mark.shared
@pytest.mark.skipif(not V3_WEIGHTS.is_file(), reason="needs ImageNet weights for mobilenet_v3_small")
def test_a_saturated_output_stops_training_after_that_epoch_and_says_what_to_change(tmp_path: Path) -> None:
    """A learning rate far too high drives the sigmoid output to its end, where it gets no gradient:
    the run stops after the first such epoch instead of running out its epochs."""
    train = _stack(tmp_path, "train", np.linspace(5, 80, 24).round())
    spec = EstimatorSpec(backbone="mobilenet_v3_small", weights=str(V3_WEIGHTS), image_size=32,
                         head=HeadSpec(units=16), fit=FitSpec(learning_rate=0.5, loss="mse", epochs=20, batch_size=8))
    epochs: list[int] = []
    with pytest.raises(TrainingStalled, match=r"every validation face gets the same output .*lower learning_rate "
                                              r"than 0.5, the output 'linear', or the loss 'mae'"):
        train_estimator(spec, train, train, {"valid": train}, tmp_path / "cache", log=lambda m: None,
                        on_epoch=lambda epoch, logs: epochs.append(epoch))
    assert len(epochs) < 20


def _stack(folder: Path, name: str, ages: np.ndarray, size: int = 32) -> Stack:
    with StackWriter(folder / f"{name}.npy", len(ages), (size, size, 3)) as writer:
        for i, age in enumerate(ages):
            writer.append(np.asarray(synthetic_face(age, size, seed=i)))
        writer.close()
    return Stack(folder / f"{name}.npy", ages.astype(np.float32), name)


@pytest.mark.shared
@pytest.mark.skipif(not V3_WEIGHTS.is_file(), reason="needs ImageNet weights for mobilenet_v3_small")
def test_mirror_average_is_the_mean_over_each_image_and_its_mirror(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    with StackWriter(tmp_path / "noise.npy", 6, (32, 32, 3)) as writer:
        writer.append(rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8))
        writer.close()
    stack = Stack(tmp_path / "noise.npy", np.linspace(10, 60, 6).astype(np.float32), "noise")
    spec = EstimatorSpec(backbone="mobilenet_v3_small", weights=str(V3_WEIGHTS), image_size=32,
                         head=HeadSpec(units=8, activation="linear", output="linear"), train_last=10,
                         mirror_average=True,
                         fit=FitSpec(epochs=10, patience=10, batch_size=3, learning_rate=0.003, loss="mse"))
    trained = train_estimator(spec, stack, stack, {"test": stack}, tmp_path / "cache", log=lambda m: None)
    preprocess = get_backbone("mobilenet_v3_small").preprocess_input
    plain = predict_stack(trained.model, preprocess, stack.images).reshape(-1)
    mirrored = trained.model.predict(model_input(np.load(stack.images)[:, :, ::-1], preprocess), verbose=0)
    assert np.abs(plain - mirrored.reshape(-1)).max() > 0.2, "noise looks different mirrored"
    expected = (plain + mirrored.reshape(-1)) / 2
    assert np.allclose(trained.predictions["test"], expected, atol=0.05), "cached path, mirrored features"
    full = predict_stack(trained.model, preprocess, stack.images, mirror_average=True).reshape(-1)
    assert np.allclose(full, expected, atol=1e-4), "full model, mirrored batches"


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.skipif(not V3_WEIGHTS.is_file(), reason="needs ImageNet weights for mobilenet_v3_small")
def test_model_learns_age_encoded_in_pixels(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    train, valid, test = (_stack(tmp_path, n, rng.uniform(1, 90, k).round()) for n, k in
                          (("train", 240), ("valid", 60), ("test", 60)))
    spec = EstimatorSpec(backbone="mobilenet_v3_small", weights=str(V3_WEIGHTS), image_size=32,
                         head=HeadSpec(units=64, dropout=0.0),
                         fit=FitSpec(learning_rate=3e-3, epochs=60, patience=10, batch_size=32))
    trained = train_estimator(spec, train, valid, {"test": test}, tmp_path / "cache", log=lambda m: None)
    mean_predictor = mae(np.full(len(test.targets), train.targets.mean()), test.targets)
    assert mae(trained.predictions["test"], test.targets) < 0.5 * mean_predictor
    images = np.load(test.images)
    full = trained.model.predict(model_input(images, get_backbone("mobilenet_v3_small").preprocess_input), verbose=0)
    assert np.allclose(full.reshape(-1), trained.predictions["test"], atol=0.05), "the saved model is the trained one"
    assert list((tmp_path / "cache").iterdir()), "features were cached"


def test_weights_are_named_by_their_content_not_their_path(tmp_path: Path) -> None:
    first, second = tmp_path / "a" / "x.weights.h5", tmp_path / "b" / "x.weights.h5"
    for path in (first, second):
        path.parent.mkdir()
        path.write_bytes(b"same bytes")
    assert weights_identity(str(first)) == weights_identity(str(second)) != weights_identity("imagenet")
    assert weights_identity(None) != weights_identity("imagenet")
    before = weights_identity(str(first))
    first.write_bytes(b"new! bytes")
    os.utime(first, ns=(0, first.stat().st_mtime_ns + 1_000_000_000))
    assert weights_identity(str(first)) != before, "a file replaced at the same path is new weights"


@pytest.mark.shared
@pytest.mark.skipif(not V3_WEIGHTS.is_file(), reason="needs ImageNet weights for mobilenet_v3_small")
def test_the_same_spec_trains_the_same_model_whatever_ran_before_it(tmp_path: Path) -> None:
    stack = _stack(tmp_path, "faces", np.linspace(5.0, 80.0, 8))
    spec = EstimatorSpec(backbone="mobilenet_v3_small", weights=str(V3_WEIGHTS), image_size=32,
                         head=HeadSpec(units=16), fit=FitSpec(epochs=2, batch_size=4))
    first = train_estimator(spec, stack, stack, {"valid": stack}, tmp_path / "first", log=lambda _: None)
    keras.layers.Dense(64).build((None, 64))
    np.random.default_rng().random(100)
    again = train_estimator(spec, stack, stack, {"valid": stack}, tmp_path / "again", log=lambda _: None)
    np.testing.assert_array_equal(first.predictions["valid"], again.predictions["valid"])
    assert np.ptp(first.predictions["valid"]) > 0


@pytest.mark.slow
@pytest.mark.shared
@pytest.mark.skipif(not V3_WEIGHTS.is_file(), reason="needs ImageNet weights for mobilenet_v3_small")
def test_cached_features_follow_the_weights_file_wherever_it_lies(tmp_path: Path) -> None:
    stack = _stack(tmp_path, "faces", np.array([5.0, 30.0, 60.0, 80.0]))
    spec = EstimatorSpec(backbone="mobilenet_v3_small", weights=str(V3_WEIGHTS), image_size=32,
                         head=HeadSpec(units=32), fit=FitSpec(epochs=1, batch_size=4))
    first: list[str] = []
    train_estimator(spec, stack, stack, {}, tmp_path / "cache", log=first.append)
    assert any(m.startswith("computing") for m in first)
    moved = tmp_path / "elsewhere" / V3_WEIGHTS.name
    moved.parent.mkdir()
    shutil.copy(V3_WEIGHTS, moved)
    again: list[str] = []
    train_estimator(replace(spec, weights=str(moved)), stack, stack, {}, tmp_path / "cache", log=again.append)
    assert any(m.startswith("reusing cached") for m in again)
    assert not any(m.startswith("computing") for m in again), again


@pytest.mark.slow
def test_weights_file_is_preferred_and_missing_download_says_both_ways_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mobilenet_v2.weights.h5").write_bytes(b"")
    assert weights_source("mobilenet_v2", tmp_path) == str(tmp_path / "mobilenet_v2.weights.h5")
    assert weights_source("nasnet_mobile", tmp_path) == "imagenet"

    def offline(*args: object, **kwargs: object) -> None:
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- no network")

    monkeypatch.setattr("keras.src.utils.file_utils.get_file", offline)
    with pytest.raises(WeightsUnavailable, match="AGE_ASSETS_WEIGHTS_DIR.*nasnet_mobile.weights.h5"):
        build_backbone("nasnet_mobile", 224, "imagenet")


def test_nan_loss_stops_training_with_a_clear_error() -> None:
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    x = np.ones((64, 4), dtype="float32")
    x[5, 2] = np.nan
    with pytest.raises(TrainingDiverged, match=r"training loss became nan at epoch 1; try a lower learning_rate"):
        fit(model, (x, np.ones(64)), (np.ones((8, 4)), np.ones(8)), FitSpec(epochs=5), "mae")


def test_stack_batches_cover_each_row_once_per_epoch_with_its_target(tmp_path: Path) -> None:
    rows = np.arange(50)
    for i in range(2):
        np.save(tmp_path / f"train_{i}.npy", np.broadcast_to((rows * 10 + i)[:, None], (50, 3)).astype(np.float16))
    batches = StackBatches([tmp_path / "train_0.npy", tmp_path / "train_1.npy"], rows * 100, 8, shuffle=True)
    epochs = []
    for _ in range(2):
        seen = []
        for index in range(len(batches)):
            (first, second), targets = batches[index]
            assert (first[:, 0] == targets // 10).all() and (second[:, 0] == first[:, 0] + 1).all()
            seen += list(targets // 100)
        batches.on_epoch_end()
        assert sorted(seen) == list(rows)
        epochs.append(seen)
    assert epochs[0] != epochs[1], "reshuffled between epochs"


def test_stack_batches_draw_an_oversampled_row_as_often_as_asked(tmp_path: Path) -> None:
    rows = np.arange(20)
    np.save(tmp_path / "rows.npy", rows[:, None].astype(np.float16))
    draws = np.where(rows >= 15, 3, 1)
    batches = StackBatches([tmp_path / "rows.npy"], rows.astype(float), 8, shuffle=True, draws=draws)
    assert len(batches) == 4, "30 draws in batches of 8"
    for _ in range(2):
        seen = np.concatenate([batches[i][1] for i in range(len(batches))]).astype(int)
        assert np.array_equal(np.bincount(seen, minlength=20), draws)
        batches.on_epoch_end()


def test_a_feature_pass_over_some_rows_gives_those_rows_features(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    np.save(tmp_path / "faces.npy", rng.integers(0, 256, (40, 8, 8, 3), dtype=np.uint8))
    front = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D()])
    rows = np.flatnonzero(np.arange(40) % 4 < 2)  # copies 0 and 1 of ten images grown fourfold

    def identity(x: np.ndarray) -> np.ndarray:
        return x

    for folder in ("every", "some"):
        (tmp_path / folder).mkdir()
    write_features(front, identity, tmp_path / "faces.npy", tmp_path / "every", "train", tmp_path / "p1", batch=8)
    write_features(front, identity, tmp_path / "faces.npy", tmp_path / "some", "train", tmp_path / "p2", batch=8,
                   rows=rows)
    (every,), (some,) = feature_files(tmp_path / "every", "train"), feature_files(tmp_path / "some", "train")
    np.testing.assert_array_equal(np.load(some), np.load(every)[rows])


def test_a_stack_of_some_rows_draws_only_those_with_their_targets(tmp_path: Path) -> None:
    np.save(tmp_path / "faces.npy", np.arange(12, dtype=np.uint8).reshape(12, 1, 1, 1).repeat(3, axis=-1))
    rows = np.array([0, 1, 4, 5, 8, 9])
    stack = Stack(tmp_path / "faces.npy", rows.astype(np.float32) * 10, "faces/copies 2", rows=rows)
    targets, draws = stack.over_every_row()
    batches = StackBatches([stack.images], targets, 4, shuffle=True, draws=draws)
    seen = [(int(x[0, 0, 0]), float(y)) for i in range(len(batches)) for x, y in zip(*batches[i])]
    assert sorted(seen) == [(r, r * 10.0) for r in rows]


def test_a_cosine_schedule_decays_the_learning_rate_to_zero_at_the_end_of_the_last_epoch(tmp_path: Path) -> None:
    schedule = learning_rate(FitSpec(learning_rate=1e-3, schedule="cosine", epochs=3), steps_per_epoch=10)
    assert [round(float(schedule(step)), 6) for step in (0, 15, 30)] == [1e-3, 5e-4, 0.0]
    assert learning_rate(FitSpec(learning_rate=1e-3, schedule="constant"), 10) == 1e-3
    rows = np.random.default_rng(0).normal(size=(50, 4)).astype("float32")
    ages = np.linspace(10, 60, 50).astype("float32")
    np.save(tmp_path / "rows.npy", rows)
    for train in ((rows, ages), (StackBatches([tmp_path / "rows.npy"], ages, 16, True), None)):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
        fit(model, train, (rows, ages), FitSpec(learning_rate=1e-2, schedule="cosine", epochs=3, patience=3,
                                                batch_size=16), "mae")
        assert int(model.optimizer.iterations) == 12, "4 batches in each of 3 epochs"
        assert float(model.optimizer.learning_rate) == pytest.approx(0.0, abs=1e-9), "decayed to 0 at the end"


def test_first_copies_take_the_leading_copies_of_each_image_or_the_whole_stack(tmp_path: Path) -> None:
    copy = np.tile(np.arange(4), 3)  # three images grown fourfold, copy 0 first
    stack = Stack(tmp_path / "faces.npy", np.arange(12, dtype=np.float32), "grown/train")
    two = stack.first_copies(copy, 2)
    np.testing.assert_array_equal(two.rows, [0, 1, 4, 5, 8, 9])
    np.testing.assert_array_equal(two.targets, [0, 1, 4, 5, 8, 9])
    assert two.fingerprint == "grown/train/copies 2"
    assert stack.first_copies(copy, 0) is stack and stack.first_copies(copy, 4) is stack
