"""Train one age estimator (regressor or bucket classifier) end to end, caching frozen features."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np

from age_assets.ml.backbones import get_backbone
from age_assets.ml.features import extract_features, load_features, model_input, save_features
from age_assets.ml.models import HeadSpec, Split, build_model, split_at_frozen_boundary
from age_assets.ml.npy import iter_blocks
from age_assets.ml.training import FitSpec, ImageBatches, fit
from age_assets.storage import build_once, fingerprint

Log = Callable[[str], None]


@dataclass(frozen=True)
class EstimatorSpec:
    backbone: str
    weights: str | None  # a weights file, "imagenet" or None (random initialisation)
    image_size: int
    head: HeadSpec = field(default_factory=HeadSpec)
    train_last: int = 0
    fit: FitSpec = field(default_factory=FitSpec)
    classes: int = 0  # 0: a regressor in years; else a softmax over this many buckets


@dataclass(frozen=True)
class Stack:
    """A uint8 image stack on disk, its targets, and a fingerprint naming its contents."""

    images: Path
    targets: np.ndarray
    fingerprint: str


@dataclass
class Trained:
    model: keras.Model
    history: dict[str, list[float]]
    predictions: dict[str, np.ndarray]  # per evaluated split: years, or class probabilities
    boundary: list[str]


def _features(split: Split, spec: EstimatorSpec, stack: Stack, name: str, cache: Path, log: Log) -> list[np.ndarray]:
    key = fingerprint(spec.backbone, spec.weights, spec.image_size, split.boundary, stack.fingerprint, name)

    def build(folder: Path) -> None:
        log(f"computing {spec.backbone} features at {split.boundary} for {len(stack.targets)} {name} images")
        save_features(folder, name, extract_features(split.front, get_backbone(spec.backbone).preprocess_input,
                                                     stack.images))

    if build_once(cache / key, build):
        log(f"reusing cached {spec.backbone} features for {name}")
    return load_features(cache / key, name)


def _one_or_many(parts: list[np.ndarray]) -> np.ndarray | list[np.ndarray]:
    return parts[0] if len(parts) == 1 else parts


def train_estimator(
    spec: EstimatorSpec, train: Stack, valid: Stack, evaluate: dict[str, Stack], cache: Path,
    log: Log = print, on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> Trained:
    """Build, train and evaluate a model; returns it with its history and per-split predictions.

    With a frozen part in front of the trainable layers, that part runs once per image (cached
    under ``cache``, shared by every model with the same backbone, boundary and images) and only
    the rest trains, epoch after epoch, on the cached outputs. With every layer training, batches
    stream from the image stacks instead.
    """
    model = build_model(spec.backbone, spec.image_size, spec.weights, spec.head, spec.train_last, spec.classes)
    split = split_at_frozen_boundary(model)
    metric = "accuracy" if spec.classes else "mae"
    preprocess = get_backbone(spec.backbone).preprocess_input
    if split.front is not None:
        x = {name: _one_or_many(_features(split, spec, s, name, cache, log))
             for name, s in {"train": train, "valid": valid, **evaluate}.items()}
        history = fit(split.tail, (x["train"], train.targets), (x["valid"], valid.targets), spec.fit, metric, on_epoch)
        predictions = {name: split.tail.predict(x[name], batch_size=256, verbose=0) for name in evaluate}
    else:
        batches = ImageBatches(train.images, train.targets, preprocess, spec.fit.batch_size, True, spec.fit.seed)
        checks = ImageBatches(valid.images, valid.targets, preprocess, spec.fit.batch_size, False)
        history = fit(model, (batches, None), (checks, None), spec.fit, metric, on_epoch)
        predictions = {name: predict_stack(model, preprocess, s.images) for name, s in evaluate.items()}
    if not spec.classes:
        predictions = {name: p.reshape(-1) for name, p in predictions.items()}
    return Trained(model, history, predictions, split.boundary)


def predict_stack(model: keras.Model, preprocess: Callable[[np.ndarray], np.ndarray], images: Path,
                  batch: int = 64) -> np.ndarray:
    """A full model's outputs for every image of a stack, read block by block."""
    return np.concatenate([model.predict_on_batch(model_input(b, preprocess)) for b in iter_blocks(images, batch)])
