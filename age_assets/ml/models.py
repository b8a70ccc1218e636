"""Backbone plus head, which layers train, and the cut at the frozen boundary."""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np

from age_assets.ml.backbones import INPUT_LAYERS, build_backbone, get_backbone
from age_assets.ml.specs import HeadSpec

MAX_OUTPUT_AGE = 100.0
"""A sigmoid output is scaled to 0-MAX_OUTPUT_AGE years: 99.7% of UTKFace and all of APPA-REAL fit."""

EVERY_YEAR = np.arange(int(MAX_OUTPUT_AGE) + 1, dtype=np.float32)
"""The years of an output that is a softmax over every year: 0-MAX_OUTPUT_AGE."""


@dataclass(frozen=True)
class AgeScale:
    """The training targets' mean and spread, in years: where a regressor's output starts.

    The output layer starts with zero weights and a bias that puts every prediction at ``mean``, and a
    linear output learns ``(age - mean) / std``. Learning starts where the answer is closest on average
    instead of at 50 years with a loss in the thousands, which is what drove sigmoid outputs to
    saturate (and stay there) in their first epoch.
    """

    mean: float = 35.0
    std: float = 20.0

    @classmethod
    def of(cls, ages: np.ndarray) -> AgeScale:
        return cls(float(np.mean(ages)), float(np.std(ages)) or 1.0)


def _starting_distribution(scale: AgeScale, years: np.ndarray) -> np.ndarray:
    """A Gaussian of width ``scale.std`` over ``years`` whose mean is ``scale.mean``: cut off at the
    ends, the Gaussian's centre is moved (by bisection: the mean grows with it) until its mean is
    there, or as near as a centre within ten widths of the ends gets (a mean within a year of an end)."""

    def gaussian(centre: float) -> np.ndarray:
        weights = np.exp(-0.5 * np.square((years - centre) / scale.std))
        return weights / weights.sum()

    target = float(np.clip(scale.mean, years[0], years[-1]))
    low, high = float(years[0]) - 10 * scale.std, float(years[-1]) + 10 * scale.std
    for _ in range(60):
        centre = (low + high) / 2
        low, high = (centre, high) if float(gaussian(centre) @ years) < target else (low, centre)
    return np.maximum(gaussian((low + high) / 2), 1e-30)


def build_model(
    backbone: str, image_size: int, weights: str | None, head: HeadSpec, train_last: int, classes: int = 0,
    scale: AgeScale = AgeScale(),
) -> keras.Model:
    """A flat functional model: backbone layers, then the head.

    ``train_last`` backbone layers train (0: none, -1: all); BatchNormalization never does.
    ``classes`` > 0 makes a softmax classifier, else a regressor in years whose output starts at
    ``scale.mean``: a scaled sigmoid, a linear output, or the expectation of a softmax over every
    year 0-MAX_OUTPUT_AGE (starting as a Gaussian of the training ages). Outputs stay float32 under
    a mixed-precision policy.
    """
    base = build_backbone(backbone, image_size, weights)
    for layer in base.layers:
        if layer.name in INPUT_LAYERS:
            layer.trainable = False
    layers = [layer for layer in base.layers[1:] if layer.name not in INPUT_LAYERS]
    trainable = layers if train_last < 0 else layers[len(layers) - train_last:] if train_last else []
    for layer in layers:
        layer.trainable = layer in trainable and not isinstance(layer, keras.layers.BatchNormalization)
    regularizer = keras.regularizers.L2(head.l2) if head.l2 else None
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(base.output)
    if head.published:
        out = _published_head(x, backbone, weights, head, classes, regularizer)
        return keras.Model(base.input, out, name=f"{backbone}_{'classifier' if classes else 'regressor'}")
    if head.units:
        x = keras.layers.Dense(head.units, activation=head.activation, kernel_regularizer=regularizer,
                               name="head_dense")(x)
    if head.dropout:
        x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
    if classes:
        out = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="head_classes")(x)
    elif head.output == "sigmoid":
        start = min(max(scale.mean / MAX_OUTPUT_AGE, 0.01), 0.99)
        x = keras.layers.Dense(1, activation="sigmoid", kernel_initializer="zeros", dtype="float32", name="head_out",
                               bias_initializer=keras.initializers.Constant(math.log(start / (1 - start))))(x)
        out = keras.layers.Rescaling(MAX_OUTPUT_AGE, dtype="float32", name="head_years")(x)
    elif head.output == "expectation":
        start = keras.initializers.Constant(np.log(_starting_distribution(scale, EVERY_YEAR)))
        x = keras.layers.Dense(len(EVERY_YEAR), activation="softmax", kernel_initializer="zeros",
                               bias_initializer=start, dtype="float32", name="head_out")(x)
        out = _expectation(x)
    elif head.output == "linear":
        x = keras.layers.Dense(1, kernel_initializer="zeros", dtype="float32", name="head_out")(x)
        out = keras.layers.Rescaling(scale.std, offset=scale.mean, dtype="float32", name="head_years")(x)
    else:
        raise ValueError(f"unknown output {head.output!r}; use 'sigmoid', 'linear' or 'expectation'")
    return keras.Model(base.input, out, name=f"{backbone}_{'classifier' if classes else 'regressor'}")


def _expectation(softmax: keras.KerasTensor) -> keras.KerasTensor:
    """Years: the expectation of a softmax over ``EVERY_YEAR``, a fixed layer."""
    layer = keras.layers.Dense(1, use_bias=False, trainable=False, dtype="float32", name="head_years",
                               kernel_initializer=keras.initializers.Constant(EVERY_YEAR[:, None]))
    return layer(softmax)


def _published_head(pooled: keras.KerasTensor, backbone: str, weights: str | None, head: HeadSpec, classes: int,
                    regularizer: keras.regularizers.Regularizer | None) -> keras.KerasTensor:
    """The backbone's published age head on ``pooled``, with its weights: features, ``head.dropout``,
    a softmax over ``EVERY_YEAR`` (a classifier over years), or its expectation (a regressor)."""
    if classes not in (0, len(EVERY_YEAR)):
        raise ValueError(f"a published age head gives a softmax over {len(EVERY_YEAR)} years, not {classes} classes: "
                         "use it for a regressor or a classifier over years (age_sigma > 0)")
    feats_kernel, feats_bias, kernel, bias = get_backbone(backbone).published_age_head(weights, len(EVERY_YEAR))
    features = keras.layers.Dense(feats_kernel.shape[1], activation="relu", kernel_regularizer=regularizer,
                                  name="head_dense")
    x = features(pooled)
    features.set_weights([feats_kernel, feats_bias])
    if head.dropout:
        x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
    ages = keras.layers.Dense(len(EVERY_YEAR), activation="softmax", dtype="float32",
                              name="head_classes" if classes else "head_out")
    softmax = ages(x)
    ages.set_weights([kernel, bias])
    return softmax if classes else _expectation(softmax)


@dataclass
class Cut:
    """``front`` (frozen) feeds ``tail`` (everything that trains); ``tail(front(x)) == model(x)``."""

    front: keras.Model | None  # None where the boundary is the model's input: nothing to cache
    tail: keras.Model
    boundary: list[str]  # names of the layers whose outputs cross the boundary; [] without a front


def cut_at_frozen_boundary(model: keras.Model) -> Cut:
    """Cut ``model`` where the first layer with trainable weights, or anything after one, begins.

    Layers without weights (pooling, activations) stay in front of the cut while their inputs are
    frozen, so a frozen backbone caches pooled vectors, not feature maps. Boundaries that a skip
    connection crosses give several tensors.
    """
    producer = {id(t): op for op in model.operations for t in keras.tree.flatten(op.output)}
    tail: set[str] = set()
    crossing: list[keras.KerasTensor] = []
    for layer in model.operations:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        inputs = keras.tree.flatten(layer.input)
        if getattr(layer, "trainable_weights", None) or any(producer[id(t)].name in tail for t in inputs):
            tail.add(layer.name)
            crossing += [t for t in inputs if producer[id(t)].name not in tail and not any(t is c for c in crossing)]
    if not tail:
        raise ValueError(f"{model.name} has nothing to train")
    if not any(getattr(op, "weights", None) for op in model.operations if op.name not in tail):
        return Cut(None, model, [])
    front = keras.Model(model.input, crossing, name=f"{model.name}_front")
    return Cut(front, keras.Model(crossing, model.output, name=f"{model.name}_tail"),
                 [producer[id(t)].name for t in crossing])
