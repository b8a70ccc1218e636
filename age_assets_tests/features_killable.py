"""A feature pass in a process of its own that stops dead part-way: for the resume test to kill.
It saves a part every 16 images and, once IMAGES_BEFORE_PAUSE images are done, touches
FOLDER/paused and sleeps until killed.

Usage: python -m age_assets_tests.features_killable FOLDER IMAGES_BEFORE_PAUSE
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

import age_assets.ml.features as features
from age_assets.ml.backbones import get_backbone
from age_assets.ml.models import build_model, cut_at_frozen_boundary
from age_assets.ml.npy import StackWriter
from age_assets.ml.specs import HeadSpec
from age_assets_tests.conftest import SHARED_WEIGHTS

IMAGES = 100
features.PART_IMAGES = 16


def images(folder: Path) -> Path:
    path = folder / "faces.npy"
    if not path.exists():
        with StackWriter(path, IMAGES, (32, 32, 3)) as writer:
            writer.append(np.random.default_rng(0).integers(0, 256, (IMAGES, 32, 32, 3), dtype=np.uint8))
            writer.close()
    return path


def run(folder: Path, out: Path, progress: Callable[[int], None] = features.no_progress,
        log: Callable[[str], None] | None = None) -> None:
    model = build_model("mobilenet_v3_small", 32, str(SHARED_WEIGHTS / "mobilenet_v3_small.weights.h5"),
                        HeadSpec(units=4), 0)
    out.mkdir(exist_ok=True)
    features.write_features(cut_at_frozen_boundary(model).front, get_backbone("mobilenet_v3_small").preprocess_input,
                            images(folder), out, "train", folder / "parts", batch=8, progress=progress, log=log)


def main(folder: str, images_before_pause: str) -> None:
    done = [0]

    def progress(n: int) -> None:
        done[0] += n
        if done[0] >= int(images_before_pause):
            (Path(folder) / "paused").touch()
            while True:
                time.sleep(1)

    run(Path(folder), Path(folder) / "killed", progress)


if __name__ == "__main__":
    main(*sys.argv[1:])
