"""Frozen-boundary features: the front of a cut model, run once per image and cached."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from age_assets.ml.npy import StackWriter, read_rows, stack_length
from age_assets.ml.progress import no_progress

if TYPE_CHECKING:
    import keras

Preprocess = Callable[[np.ndarray], np.ndarray]


def model_input(images: np.ndarray, preprocess: Preprocess, mirrored: bool = False) -> np.ndarray:
    """uint8 images (NHWC) as the float input a backbone's weights expect, left-right mirrored if asked."""
    return preprocess((images[:, :, ::-1] if mirrored else images).astype(np.float32))


PART_IMAGES = 2048
"""Images per saved part of a feature pass: what a killed pass loses at most (about a minute)."""


def write_features(front: keras.Model, preprocess: Preprocess, images: Path, folder: Path, split: str, parts: Path,
                   batch: int = 64, mirrored: bool = False, progress: Callable[[int], None] = no_progress,
                   log: Callable[[str], None] | None = None, rows: np.ndarray | None = None) -> None:
    """The front's outputs for every image of a stack (or for its ``rows``, in ascending order), as
    float16 ``<split>_<i>.npy`` stacks in ``folder`` (one per boundary tensor).

    The pass saves a part every ``PART_IMAGES`` images under ``parts`` (a folder named for what
    the pass computes), so a killed pass resumes at its last saved part; the stacks are assembled
    from the parts at the end, and the parts removed. float16 halves the cache and is ample for
    activations that feed a few trainable layers. ``predict_on_batch`` runs a compiled graph:
    calling the model eagerly is slower and holds several times the memory.
    """
    import keras

    n = stack_length(images) if rows is None else len(rows)
    parts.mkdir(parents=True, exist_ok=True)
    starts = list(range(0, n, PART_IMAGES))
    saved = [start for start in starts if (parts / f"{start:09d}.npz").is_file()]
    if saved and log:
        log(f"resuming the feature pass of {images.name} at image {len(saved) * PART_IMAGES:,} of {n:,}: "
            f"{len(saved)} of {len(starts)} parts were saved")
    for start in starts:
        stop = min(n, start + PART_IMAGES)
        part = parts / f"{start:09d}.npz"
        if part.is_file():
            progress(stop - start)
            continue
        outputs: list[list[np.ndarray]] = []
        for block_start in range(start, stop, batch):
            block_stop = min(stop, block_start + batch)
            if rows is None:
                block = read_rows(images, block_start, block_stop)
            else:
                taken = rows[block_start:block_stop]
                block = read_rows(images, int(taken[0]), int(taken[-1]) + 1)[taken - taken[0]]
            tensors = keras.tree.flatten(front.predict_on_batch(model_input(block, preprocess, mirrored)))
            outputs = outputs or [[] for _ in tensors]
            for kept, tensor in zip(outputs, tensors):
                kept.append(np.asarray(tensor, dtype=np.float16))
            progress(len(block))
        scratch = parts / f".{start:09d}.{os.getpid()}.npz"
        np.savez(scratch, *[np.concatenate(kept) for kept in outputs])
        os.replace(scratch, part)
    writers: list[StackWriter] = []
    for start in starts:
        with np.load(parts / f"{start:09d}.npz") as stored:
            arrays = [stored[f"arr_{i}"] for i in range(len(stored.files))]
        writers = writers or [StackWriter(folder / f"{split}_{i}.npy", n, a.shape[1:], np.float16)
                              for i, a in enumerate(arrays)]
        for writer, array in zip(writers, arrays):
            writer.append(array)
    for writer in writers:
        writer.close()
    shutil.rmtree(parts, ignore_errors=True)


def feature_files(folder: Path, split: str) -> list[Path]:
    """The split's feature stacks in ``folder``, in the order of the boundary tensors."""
    return sorted(folder.glob(f"{split}_*.npy"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
