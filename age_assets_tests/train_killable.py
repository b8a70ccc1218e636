"""Train a small regressor in a process of its own that stops dead after an epoch: a training step
the resume test can kill. It appends each epoch's logs to FOLDER/epochs.jsonl, and after epoch
PAUSE_AFTER touches FOLDER/paused and sleeps until killed.

Usage: python -m age_assets_tests.train_killable FOLDER PAUSE_AFTER
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from age_assets.ml.estimator import Trained, train_estimator
from age_assets.ml.specs import EstimatorSpec, FitSpec, HeadSpec
from age_assets_tests.conftest import SHARED_WEIGHTS
from age_assets_tests.test_models import _stack

EPOCHS = 5


def train(folder: Path, on_epoch: object = None, log: object = print) -> Trained:
    ages = np.linspace(5, 80, 48).round()
    stacks = {name: _stack(folder, name, ages[i::2]) for i, name in enumerate(("train", "valid"))}
    spec = EstimatorSpec(backbone="mobilenet_v3_small", weights=str(SHARED_WEIGHTS / "mobilenet_v3_small.weights.h5"),
                         image_size=32, head=HeadSpec(units=16, output="linear"),
                         fit=FitSpec(learning_rate=3e-3, epochs=EPOCHS, patience=EPOCHS, batch_size=8))
    return train_estimator(spec, stacks["train"], stacks["valid"], {"valid": stacks["valid"]}, folder / "features",
                           log, on_epoch, folder / "checkpoints")  # type: ignore[arg-type]


def main(folder: str, pause_after: str) -> None:
    root = Path(folder)

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        with open(root / "epochs.jsonl", "a") as out:
            out.write(json.dumps(logs) + "\n")
        if epoch + 1 == int(pause_after):
            (root / "paused").touch()
            while True:
                time.sleep(1)

    train(root, on_epoch)


if __name__ == "__main__":
    main(*sys.argv[1:])
