"""What to build and how to fit it: plain data, the single source of the training defaults (the asset
configs take theirs from here), importable without Keras."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Optimizer = Literal["adam", "adamw", "sgd"]
Output = Literal["sigmoid", "linear", "expectation"]
RegressionLoss = Literal["mse", "mae", "huber"]
TrainOn = Literal["augmented", "plain"]
Schedule = Literal["constant", "cosine"]

REGRESSION_OUTPUT: Output = "sigmoid"
REGRESSION_LOSS: RegressionLoss = "mae"


@dataclass(frozen=True, kw_only=True)
class HeadSpec:
    """The study's head: global average pooling, one Dense layer, dropout or L2, one output."""

    units: int = 1024
    activation: str = "relu"
    dropout: float = 0.5
    l2: float = 0.0
    output: str = REGRESSION_OUTPUT  # an Output, or a classifier's "softmax"
    published: bool = False
    """Start from the backbone's published age head instead: its Dense(256) features and softmax over
    years, with their weights (``units`` and ``activation`` do not apply); a regressor's age is that
    softmax's expectation."""


@dataclass(frozen=True, kw_only=True)
class FitSpec:
    """How a model is fitted. The defaults are the asset configs' defaults too."""

    optimizer: Optimizer = "adam"
    learning_rate: float = 3e-4
    schedule: Schedule = "constant"  # the learning rate: constant, or cosine-decayed to 0 over ``epochs``
    loss: str = REGRESSION_LOSS  # a RegressionLoss, or a classifier's
    epochs: int = 60
    patience: int = 8
    batch_size: int = 64
    seed: int = 0


@dataclass(frozen=True, kw_only=True)
class EstimatorSpec:
    backbone: str
    weights: str | None  # a weights file, "imagenet" or None (random initialisation)
    image_size: int
    head: HeadSpec = field(default_factory=HeadSpec)
    train_last: int = 0
    fit: FitSpec = field(default_factory=FitSpec)
    classes: int = 0  # 0: a regressor in years; else a classifier over this many buckets
    mirror_average: bool = False  # predict each evaluated image and its mirror image, and average
    age_sigma: float = 0.0  # a classifier's width (years) of the age distribution it learns; 0: buckets alone
