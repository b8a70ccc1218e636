"""ImageNet backbones from ``keras.applications``, each with its own ``preprocess_input``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np


@dataclass(frozen=True)
class Backbone:
    """A no-top ``keras.applications`` model and the input scaling its weights expect."""

    name: str
    constructor: Callable[..., keras.Model]
    preprocess_input: Callable[[np.ndarray], np.ndarray]


BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in [
        Backbone("mobilenet_v3_small", keras.applications.MobileNetV3Small,
                 keras.applications.mobilenet_v3.preprocess_input),
        Backbone("mobilenet_v3_large", keras.applications.MobileNetV3Large,
                 keras.applications.mobilenet_v3.preprocess_input),
        Backbone("mobilenet_v2", keras.applications.MobileNetV2, keras.applications.mobilenet_v2.preprocess_input),
        Backbone("nasnet_mobile", keras.applications.NASNetMobile, keras.applications.nasnet.preprocess_input),
        Backbone("efficientnet_b0", keras.applications.EfficientNetB0,
                 keras.applications.efficientnet.preprocess_input),
    ]
}


class WeightsUnavailable(RuntimeError):
    """ImageNet weights could neither be found on disk nor downloaded."""


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name: str, image_size: int, weights: str | None) -> keras.Model:
    """The no-top backbone at ``image_size`` with ``weights`` (a file, ``"imagenet"`` or None).

    Every BatchNormalization layer is frozen, so it runs in inference mode even where the layers
    around it train: fine-tuning on small batches must not overwrite ImageNet statistics.
    """
    backbone = get_backbone(name)
    try:
        model = backbone.constructor(include_top=False, weights=weights, input_shape=(image_size, image_size, 3))
    except (ValueError, TypeError):
        raise
    except Exception as error:  # keras raises plain Exceptions for failed downloads
        if weights != "imagenet":
            raise
        raise WeightsUnavailable(
            f"ImageNet weights for {name} could not be downloaded ({error}). Either allow this machine to "
            f"reach Keras' weight files, or set AGE_ASSETS_WEIGHTS_DIR to a folder holding {name}.weights.h5 "
            "(a no-top weights file for the stock Keras architecture)"
        ) from error
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return model
