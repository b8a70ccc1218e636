"""Pretrained backbones (ImageNet, or faces): a table of plain data, Keras only to build one.

Each entry names its constructor, its native input size and feature width (channels after global
average pooling), and the input scaling its weights expect, so that reading the table, listing the
code location and preprocessing images need no Keras.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import keras


@dataclass(frozen=True)
class Backbone:
    """A no-top model and the input scaling its weights expect.

    The ``preprocess_input`` of the model's module (Keras', or ``efficientnet_lite``'s) equals ``x *
    scale + offset``: (1, 0) where the model rescales inside itself (MobileNetV3, EfficientNet),
    (1/127.5, -1) in Keras' 'tf' mode, (1/128, -127/128) for EfficientNet-Lite.
    """

    name: str
    constructor: str  # an attribute of keras.applications, or "module:function" taking the same arguments
    input_size: int  # the side of the square images its ImageNet weights were trained on
    feature_width: int  # channels of its last feature map: the length of a pooled feature vector
    scale: float = 1.0
    offset: float = 0.0
    weights_file: str = ""  # its pretrained weights' file in a weights folder; "" for <name>.weights.h5
    domain: str = "imagenet"  # what its weights were trained on
    age_head: str = ""  # "module:function" giving its published age head's weights (weights, years); "" for none

    @property
    def weights_file_name(self) -> str:
        return self.weights_file or f"{self.name}.weights.h5"

    def resolve_constructor(self) -> Callable[..., keras.Model]:
        """The function ``constructor`` names (importing Keras)."""
        import importlib

        import keras

        module, _, function = self.constructor.rpartition(":")
        return getattr(importlib.import_module(module) if module else keras.applications, function)

    def published_age_head(self, weights: str | None, years: int) -> list[np.ndarray]:
        """Its published age head's weights (a Dense layer of features, a softmax over ``years``: kernel
        and bias each); a ValueError for a backbone that publishes none."""
        import importlib

        if not self.age_head:
            raise ValueError(f"{self.name} has no published age head to start from")
        module, _, function = self.age_head.rpartition(":")
        weights_of: Callable[[str | None, int], list[np.ndarray]] = getattr(
            importlib.import_module(module), function)
        return weights_of(weights, years)

    def preprocess_input(self, images: np.ndarray) -> np.ndarray:
        """Float pixels 0-255 as the input the backbone's weights expect.

        Divides by ``1 / scale`` (127.5 in Keras' 'tf' mode) as Keras does, so the result equals Keras'
        to the bit; multiplying by ``scale`` differs in the last bit for some pixel values.
        """
        if self.scale == 1 and self.offset == 0:
            return images
        return images / np.float32(1 / self.scale) + np.float32(self.offset)


_TF_MODE: dict[str, Any] = {"scale": 1 / 127.5, "offset": -1.0}  # pixels to [-1, 1]

BACKBONES: dict[str, Backbone] = {
    b.name: b
    for b in [
        Backbone("mobilenet_v3_small", "MobileNetV3Small", 224, 576),
        Backbone("mobilenet_v3_large", "MobileNetV3Large", 224, 960),
        Backbone("mobilenet_v2", "MobileNetV2", 224, 1280, **_TF_MODE),
        Backbone("nasnet_mobile", "NASNetMobile", 224, 1056, **_TF_MODE),
        Backbone("efficientnet_b0", "EfficientNetB0", 224, 1280),
        Backbone("efficientnet_lite0", "age_assets.ml.efficientnet_lite:EfficientNetLite0", 224, 1280,
                 scale=1 / 128, offset=-127 / 128),
        Backbone("mobilenet_v1_faces", "age_assets.ml.face_mobilenet:FaceMobileNet", 224, 1024,
                 weights_file="hse_faceres/faceres-deep.json", domain="faces (VGGFace2 identities, then age)",
                 age_head="age_assets.ml.face_mobilenet:published_age_head"),
    ]
}


INPUT_LAYERS = frozenset({"caffe_input"})
"""Layers inside a backbone that turn pixels into the input its weights expect: never trained."""


class WeightsUnavailable(RuntimeError):
    """ImageNet weights could neither be found on disk nor downloaded or installed."""


def get_backbone(name: str) -> Backbone:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; known: {', '.join(BACKBONES)}")
    return BACKBONES[name]


def build_backbone(name: str, image_size: int, weights: str | None) -> keras.Model:
    """The no-top backbone at ``image_size`` with ``weights`` (a file, ``"imagenet"`` or None).

    Every BatchNormalization layer is frozen, so it runs in inference mode even where the layers
    around it train: fine-tuning on small batches must not overwrite ImageNet statistics.
    """
    import keras

    constructor = get_backbone(name).resolve_constructor()
    try:
        model = constructor(include_top=False, weights=weights, input_shape=(image_size, image_size, 3))
    except (ValueError, TypeError, WeightsUnavailable):
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
