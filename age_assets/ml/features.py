"""Frozen-boundary features: the front of a split model, run once per image."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from age_assets.ml.npy import iter_blocks, stack_length
from age_assets.ml.progress import no_progress

if TYPE_CHECKING:
    import keras

Preprocess = Callable[[np.ndarray], np.ndarray]


def model_input(images: np.ndarray, preprocess: Preprocess, mirrored: bool = False) -> np.ndarray:
    """uint8 images (NHWC) as the float input a backbone's weights expect, left-right mirrored if asked."""
    return preprocess((images[:, :, ::-1] if mirrored else images).astype(np.float32))


def extract_features(front: keras.Model, preprocess: Preprocess, images: Path, batch: int = 64,
                     mirrored: bool = False, progress: Callable[[int], None] = no_progress) -> list[np.ndarray]:
    """The front's outputs for every image of a stack, as float16 arrays (one per boundary tensor).

    float16 halves the cache and is ample for activations that feed a few trainable layers.
    ``predict_on_batch`` runs a compiled graph: calling the model eagerly is slower and holds
    several times the memory. ``progress`` is called with the number of images after each batch.
    """
    import keras

    n = stack_length(images)
    outputs: list[np.ndarray] = []
    start = 0
    for block in iter_blocks(images, batch):
        parts = keras.tree.flatten(front.predict_on_batch(model_input(block, preprocess, mirrored)))
        if not outputs:
            outputs = [np.empty((n, *p.shape[1:]), dtype=np.float16) for p in parts]
        for out, part in zip(outputs, parts):
            out[start:start + len(block)] = part
        start += len(block)
        progress(len(block))
    return outputs


def save_features(folder: Path, split: str, features: list[np.ndarray]) -> None:
    for i, array in enumerate(features):
        np.save(folder / f"{split}_{i}.npy", array)


def feature_files(folder: Path, split: str) -> list[Path]:
    """The split's feature stacks in ``folder``, in the order of the boundary tensors."""
    return sorted(folder.glob(f"{split}_*.npy"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
