"""Train one age estimator (regressor or bucket classifier) end to end, caching frozen features."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from age_assets.artifacts import write_predictions
from age_assets.ml.age_distribution import BUCKET_SUMS, YEARS, age_distribution_loss, bucket_accuracy, median_age
from age_assets.ml.backbones import get_backbone
from age_assets.ml.features import feature_files, model_input, write_features
from age_assets.ml.models import AgeScale, Cut, build_model, cut_at_frozen_boundary
from age_assets.ml.npy import iter_blocks, stack_length
from age_assets.ml.progress import Log, Progress
from age_assets.ml.specs import EstimatorSpec
from age_assets.ml.training import StackBatches, fit, image_batches
from age_assets.ml.weights import weights_identity
from age_assets.storage import build_once, fingerprint, require_free_space

PROBE_ROWS = 256
"""Validation inputs whose outputs must differ after each epoch (``training.OutputWatch``)."""


@dataclass(frozen=True)
class Stack:
    """A uint8 image stack on disk, its targets, and a fingerprint naming its contents. ``rows``
    (ascending) takes some of the stack's images, every one by default; ``targets`` are theirs. As a
    training stack, ``draws`` says how often each image is drawn an epoch (oversampling; default once)."""

    images: Path
    targets: np.ndarray
    fingerprint: str
    draws: np.ndarray | None = None
    rows: np.ndarray | None = None

    def first_copies(self, copy: np.ndarray, copies: int) -> Stack:
        """Of an augmented stack whose ``copy`` numbers each row's copy (0 the original), the first
        ``copies`` copies of every image; the whole stack where ``copies`` is 0 or covers every copy."""
        if not copies or copies > copy.max():
            return self
        rows = np.flatnonzero(copy < copies)
        return Stack(self.images, self.targets[rows], f"{self.fingerprint}/copies {copies}", rows=rows)

    def over_every_row(self) -> tuple[np.ndarray, np.ndarray | None]:
        """Targets and draws indexed by the stack's rows: a row outside ``rows`` is never drawn."""
        if self.rows is None:
            return self.targets, self.draws
        n = stack_length(self.images)
        targets = np.zeros((n, *self.targets.shape[1:]), dtype=self.targets.dtype)
        targets[self.rows] = self.targets
        draws = np.zeros(n, dtype=int)
        draws[self.rows] = 1 if self.draws is None else self.draws
        return targets, draws


@dataclass
class Trained:
    """A trained estimator, what it was trained from, and its outputs on the evaluated splits."""

    spec: EstimatorSpec
    model: keras.Model
    history: dict[str, list[float]]
    predictions: dict[str, np.ndarray]  # per evaluated split: years, or bucket probabilities
    boundary: list[str]
    train_images: int
    ages: dict[str, np.ndarray] | None = None  # a classifier over years: per evaluated split, its median ages

    @property
    def metric(self) -> str:
        """The validation metric that chose the best epoch: ``mae``, or ``accuracy`` of the buckets."""
        return "accuracy" if self.spec.classes else "mae"

    def summary(self) -> dict[str, Any]:
        """What ``info.json`` says of the training: the cut, the epochs and the best one with its
        validation score (one view of each face: Keras' own figure), the model's size."""
        scores = self.history[f"val_{self.metric}"]
        best = int(np.argmin(scores) if self.metric == "mae" else np.argmax(scores))
        return {"backbone": self.spec.backbone, "image_size": self.spec.image_size, "boundary": self.boundary,
                "epochs": len(scores), "best_epoch": best + 1,
                f"val_{self.metric}_one_view_best_epoch": float(scores[best]),
                "trainable_params": int(sum(math.prod(w.shape) for w in self.model.trainable_weights)),
                "train_images": self.train_images}

    def save(self, folder: Path, about: Mapping[str, Any]) -> None:
        """Write ``model.keras``, ``predictions.csv`` (``write_predictions``), ``history.csv`` (a row
        per epoch) and ``info.json``: ``about`` (what the caller adds: kind, target, settings, device)
        and ``summary()``."""
        self.model.save(folder / "model.keras")
        write_predictions(folder / "predictions.csv", self.predictions, self.ages)
        (folder / "info.json").write_text(json.dumps({**about, **self.summary()}, indent=1))
        pd.DataFrame(self.history).to_csv(folder / "history.csv", index_label="epoch")


def _features(cut: Cut, spec: EstimatorSpec, stack: Stack, name: str, cache: Path, log: Log,
              mirrored: bool = False) -> list[Path]:
    key = fingerprint(spec.backbone, weights_identity(spec.weights), spec.image_size, cut.boundary,
                      stack.fingerprint, name, *(["mirrored"] if mirrored else []))
    what = f"{'mirrored ' if mirrored else ''}{name}"
    front = cut.front
    if front is None:
        raise ValueError("features are cached only where a frozen front feeds the trainable layers")

    def build(folder: Path) -> None:
        log(f"computing {spec.backbone} features at {cut.boundary} for {len(stack.targets)} {what} images")
        per_image = sum(math.prod(t.shape[1:]) for t in keras.tree.flatten(front.outputs)) * 2  # float16
        # the saved parts and the stacks assembled from them are both on disk until the parts go
        require_free_space(cache, 2 * len(stack.targets) * per_image, f"{spec.backbone} features of {what} images")
        progress = Progress(log, f"{spec.backbone} features of {what} images", len(stack.targets))
        write_features(front, get_backbone(spec.backbone).preprocess_input, stack.images, folder, name,
                       cache / f"{key}.parts", mirrored=mirrored, progress=progress.advance, log=log, rows=stack.rows)

    if build_once(cache / key, build):
        log(f"reusing cached {spec.backbone} features for {what}")
    return feature_files(cache / key, name)


def _loaded(files: list[Path]) -> np.ndarray | list[np.ndarray]:
    """The tail's input for a (small) evaluated split: one array, or a list for several tensors."""
    parts = [np.load(f) for f in files]
    return parts[0] if len(parts) == 1 else parts


def _first_rows(x: np.ndarray | list[np.ndarray], n: int = PROBE_ROWS) -> np.ndarray | list[np.ndarray]:
    return [part[:n] for part in x] if isinstance(x, list) else x[:n]


def train_estimator(
    spec: EstimatorSpec, train: Stack, valid: Stack, evaluate: dict[str, Stack], cache: Path,
    log: Log = print, on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    checkpoints: Path | None = None, tensorboard: Path | None = None,
) -> Trained:
    """Build, train and evaluate a model; returns it with its history and per-split predictions.

    With a frozen part in front of the trainable layers, that part runs once per image (cached
    under ``cache``, shared by every model with the same backbone, boundary and images) and only
    the rest trains, epoch after epoch, on the cached outputs, read batch by batch from disk. With
    every layer training, batches stream from the image stacks instead. With
    ``spec.mirror_average`` each evaluated image is predicted as it is and mirrored left to right,
    and the two outputs averaged (faces are close to symmetric, so the mirror is a second look at
    the same face). A classifier with ``spec.age_sigma`` learns a distribution over years from the
    true ages (``ml.age_distribution``); its model outputs that distribution, its predictions sum it
    into buckets, and its ``ages`` are the distributions' medians. ``checkpoints`` and
    ``tensorboard``: see ``fit``. ``spec.fit.seed`` fixes the head's first weights as well as the
    order of the batches, so the same spec trains the same model whatever ran before it.
    """
    over_years = bool(spec.classes and spec.age_sigma)
    keras.utils.set_random_seed(spec.fit.seed)
    model = build_model(spec.backbone, spec.image_size, spec.weights, spec.head, spec.train_last,
                        YEARS if over_years else spec.classes, AgeScale.of(train.targets))
    cut = cut_at_frozen_boundary(model)
    metric = bucket_accuracy() if over_years else "accuracy" if spec.classes else "mae"
    loss = age_distribution_loss(spec.age_sigma) if over_years else None
    preprocess = get_backbone(spec.backbone).preprocess_input
    if cut.front is not None:
        files = {name: _features(cut, spec, s, name, cache, log)
                 for name, s in {"train": train, "valid": valid, **evaluate}.items()}
        x = {name: _loaded(files[name]) for name in {"valid", *evaluate}}
        batches = StackBatches(files["train"], train.targets, spec.fit.batch_size, True, spec.fit.seed,
                               draws=train.draws)
        history = fit(cut.tail, (batches, None), (x["valid"], valid.targets), spec.fit, metric, on_epoch, loss,
                      probe=_first_rows(x["valid"]), log=log, checkpoints=checkpoints, tensorboard=tensorboard)
        predictions = {name: cut.tail.predict(x[name], batch_size=256, verbose=0) for name in evaluate}
        if spec.mirror_average:
            for name, s in evaluate.items():
                mirrored = _loaded(_features(cut, spec, s, name, cache, log, mirrored=True))
                predictions[name] = (predictions[name] + cut.tail.predict(mirrored, batch_size=256, verbose=0)) / 2
    else:
        targets, draws = train.over_every_row()
        batches = image_batches(train.images, targets, preprocess, spec.fit.batch_size, True, spec.fit.seed, draws)
        checks = image_batches(valid.images, valid.targets, preprocess, spec.fit.batch_size, False)
        probe = model_input(np.load(valid.images, mmap_mode="r")[:PROBE_ROWS], preprocess)
        history = fit(model, (batches, None), (checks, None), spec.fit, metric, on_epoch, loss, probe=probe, log=log,
                      checkpoints=checkpoints, tensorboard=tensorboard)
        predictions = {name: predict_stack(model, preprocess, s.images, mirror_average=spec.mirror_average)
                       for name, s in evaluate.items()}
    if over_years:
        ages = {name: keras.ops.convert_to_numpy(median_age(p)) for name, p in predictions.items()}
        return Trained(spec, model, history, {name: p @ BUCKET_SUMS for name, p in predictions.items()},
                       cut.boundary, len(train.targets), ages)
    if not spec.classes:
        predictions = {name: p.reshape(-1) for name, p in predictions.items()}
    return Trained(spec, model, history, predictions, cut.boundary, len(train.targets))


def predict_images(model: keras.Model, preprocess: Callable[[np.ndarray], np.ndarray], images: np.ndarray,
                   mirror_average: bool = False) -> np.ndarray:
    """A full model's outputs for a batch of uint8 images, averaged with its mirror images' if asked."""
    outputs = model.predict_on_batch(model_input(images, preprocess))
    if mirror_average:
        outputs = (outputs + model.predict_on_batch(model_input(images, preprocess, mirrored=True))) / 2
    return outputs


def predict_stack(model: keras.Model, preprocess: Callable[[np.ndarray], np.ndarray], images: Path,
                  batch: int = 64, mirror_average: bool = False) -> np.ndarray:
    """A full model's outputs for every image of a stack, read block by block."""
    return np.concatenate([predict_images(model, preprocess, b, mirror_average) for b in iter_blocks(images, batch)])
