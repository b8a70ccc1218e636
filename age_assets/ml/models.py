"""Backbone plus head, which layers train, and the split at the frozen boundary."""

from __future__ import annotations

from dataclasses import dataclass

import keras

from age_assets.ml.backbones import build_backbone

MAX_AGE = 100.0
"""A sigmoid output is scaled to 0-MAX_AGE years: 99.7% of UTKFace and all of APPA-REAL fit."""


@dataclass(frozen=True)
class HeadSpec:
    """The study's head: global average pooling, one Dense layer, dropout or L2, one output."""

    units: int = 1024
    activation: str = "relu"
    dropout: float = 0.5
    l2: float = 0.0
    output: str = "sigmoid"  # "sigmoid" (scaled to 0-MAX_AGE years) or "linear"; ignored by classifiers


def build_model(
    backbone: str, image_size: int, weights: str | None, head: HeadSpec, train_last: int, classes: int = 0
) -> keras.Model:
    """A flat functional model: backbone layers, then the head.

    ``train_last`` backbone layers train (0: none, -1: all); BatchNormalization never does.
    ``classes`` > 0 makes a softmax classifier, else a regressor in years. Outputs stay float32
    under a mixed-precision policy.
    """
    base = build_backbone(backbone, image_size, weights)
    layers = base.layers[1:]
    trainable = layers if train_last < 0 else layers[len(layers) - train_last:] if train_last else []
    for layer in layers:
        layer.trainable = layer in trainable and not isinstance(layer, keras.layers.BatchNormalization)
    regularizer = keras.regularizers.L2(head.l2) if head.l2 else None
    x = keras.layers.GlobalAveragePooling2D(name="head_pool")(base.output)
    if head.units:
        x = keras.layers.Dense(head.units, activation=head.activation, kernel_regularizer=regularizer,
                               name="head_dense")(x)
    if head.dropout:
        x = keras.layers.Dropout(head.dropout, name="head_dropout")(x)
    if classes:
        out = keras.layers.Dense(classes, activation="softmax", dtype="float32", name="head_classes")(x)
    elif head.output == "sigmoid":
        x = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="head_out")(x)
        out = keras.layers.Rescaling(MAX_AGE, dtype="float32", name="head_years")(x)
    else:
        out = keras.layers.Dense(1, dtype="float32", name="head_out")(x)
    return keras.Model(base.input, out, name=f"{backbone}_{'classifier' if classes else 'regressor'}")


@dataclass
class Split:
    """``front`` (frozen) feeds ``tail`` (everything that trains); ``tail(front(x)) == model(x)``."""

    front: keras.Model | None  # None where the boundary is the model's input: nothing to cache
    tail: keras.Model
    boundary: list[str]  # names of the layers whose outputs cross the boundary; [] without a front


def split_at_frozen_boundary(model: keras.Model) -> Split:
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
        return Split(None, model, [])
    front = keras.Model(model.input, crossing, name=f"{model.name}_front")
    return Split(front, keras.Model(crossing, model.output, name=f"{model.name}_tail"),
                 [producer[id(t)].name for t in crossing])
