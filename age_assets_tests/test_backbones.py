"""The backbone table against what Keras builds: input scaling, native input size, feature width."""

from __future__ import annotations

import importlib

import keras
import numpy as np
import pytest

from age_assets.ml.backbones import BACKBONES


@pytest.mark.parametrize("name", BACKBONES)
def test_input_scaling_is_what_keras_preprocess_input_does(name: str) -> None:
    backbone = BACKBONES[name]
    keras_preprocess = importlib.import_module(backbone.resolve_constructor().__module__).preprocess_input
    images = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8).astype(np.float32)
    ours = backbone.preprocess_input(images.copy())
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, keras_preprocess(images.copy()))
    np.testing.assert_allclose(ours, images * backbone.scale + backbone.offset, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", BACKBONES)
def test_input_size_and_feature_width_are_what_keras_builds(name: str) -> None:
    """One build with the ImageNet classifier (the slow part is the graph, not the size): its input is
    the native size, and its last global pooling sees the feature map that the no-top model ends in."""
    backbone = BACKBONES[name]
    constructor = backbone.resolve_constructor()
    model = constructor(weights=None)
    size = backbone.input_size
    if model.input_shape[1] is None:  # MobileNetV3 takes any size even with its classifier
        assert f"({size}, {size}, 3)" in constructor.__doc__, "the default size Keras documents"
    else:
        assert model.input_shape[1:] == (size, size, 3)
    pooling = [layer for layer in model.layers if isinstance(layer, keras.layers.GlobalAveragePooling2D)][-1]
    assert pooling.output.shape[-1] == backbone.feature_width
