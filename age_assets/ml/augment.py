"""The study's augmentation, and one that adds what other cameras and scans do to a face, applied
reproducibly to a uint8 image stack."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import albumentations as A
import cv2
import numpy as np

from age_assets.ml.npy import StackWriter, read_rows, stack_length
from age_assets.ml.parallel import ordered_map
from age_assets.ml.progress import no_progress


def study_pipeline() -> A.Compose:
    """Rotate ±10°, horizontal flip, shift/scale 0.1 without rotation, brightness/contrast 0.1.

    Each step fires with albumentations' default probability 0.5; borders are reflected, as the
    albumentations 1.x defaults that the study ran on did.
    """
    return A.Compose([
        A.Rotate(limit=10, border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.HorizontalFlip(p=0.5),
        A.Affine(translate_percent=(-0.1, 0.1), scale=(0.9, 1.1), rotate=0,
                 border_mode=cv2.BORDER_REFLECT_101, p=0.5),
        A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.5),
    ])


def camera_pipeline() -> A.Compose:
    """The study's steps, then what old cameras, phones and scanned prints do to a face: greyscale or a
    sepia cast, blur or a lower resolution, sensor noise, gamma and colour casts, and JPEG at low quality
    (always last, as a camera or a web page would save it). Each fires on a minority of the copies, so
    most augmented faces still look like UTKFace's."""
    return A.Compose([
        *study_pipeline().transforms,
        A.OneOf([A.ToGray(p=1.0), A.ToSepia(p=1.0)], p=0.2),
        A.OneOf([A.GaussianBlur(sigma_limit=(0.5, 1.5), p=1.0),
                 A.Downscale(scale_range=(0.25, 0.5), p=1.0)], p=0.3),
        A.GaussNoise(std_range=(0.02, 0.08), p=0.2),
        A.RandomGamma(gamma_limit=(70, 150), p=0.3),
        A.RGBShift(r_shift_limit=15, g_shift_limit=15, b_shift_limit=15, p=0.2),
        A.ImageCompression(quality_range=(20, 60), p=0.3),
    ])


Pipeline = Literal["study", "camera"]
PIPELINES: dict[str, Callable[[], A.Compose]] = {"study": study_pipeline, "camera": camera_pipeline}


def copy_seed(seed: int, row: int, copy: int) -> int:
    """The seed of one augmented copy: independent of thread scheduling and of other rows."""
    return int(np.random.SeedSequence([seed, row, copy]).generate_state(1)[0])


def augment_stack(
    source: Path, out: Path, factor: int, seed: int, workers: int | None = None, block: int = 64,
    progress: Callable[[int], None] = no_progress, pipeline: Pipeline = "study",
) -> None:
    """Write ``factor`` copies of each image in ``source`` to ``out``: the original, then augmented ones.

    Row ``i * factor + j`` is copy ``j`` of source row ``i``, so copy 0 is always the original and
    a copy's pixels depend only on ``seed``, ``i`` and ``j``, not on threads or block size.
    ``progress`` is called with the number of source images after each block.
    """
    if factor < 1:
        raise ValueError(f"augmentation factor must be at least 1, got {factor}")
    workers = workers or os.cpu_count() or 1
    local = threading.local()

    def augment_block(start: int) -> np.ndarray:
        images = read_rows(source, start, min(n, start + block))
        if not hasattr(local, "pipeline"):
            local.pipeline = PIPELINES[pipeline]()
        copies = np.repeat(images, factor, axis=0)
        for i in range(len(images)):
            for copy in range(1, factor):
                copy_rng = copy_seed(seed, start + i, copy)
                # One stream shared by all steps: albumentations' set_random_seed gives every step the
                # same seed, so their "apply?" draws would coincide and half the copies stay unchanged.
                local.pipeline.set_random_state(np.random.default_rng(copy_rng), random.Random(copy_rng))
                copies[i * factor + copy] = local.pipeline(image=images[i])["image"]
        return copies

    n = stack_length(source)
    with StackWriter(out, n * factor, read_rows(source, 0, 1).shape[1:]) as stack:
        for copies in ordered_map(augment_block, range(0, n, block), workers, window=2 * workers):
            stack.append(copies)
            progress(len(copies) // factor)
        stack.close()
