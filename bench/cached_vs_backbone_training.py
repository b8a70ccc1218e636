"""Training on cached frozen-boundary features against the study's way, on the same real faces.

Usage: python bench/cached_vs_backbone_training.py [--faces ../shared/data/utkface] [--train 2000]
       [--valid 500] [--epochs 5] [--backbone mobilenet_v3_small] [--weights-dir ../shared/weights]

The study's way: Keras ``fit`` on the image arrays through the frozen backbone, so every epoch
runs the backbone forward over every image. Ours: one pass computes the pooled features, then
every epoch trains the head on them. Both train the same head with the same seed for the same
epochs; the script prints seconds per epoch, their ratio, the one-time feature pass, and each
one's validation MAE.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from age_assets.datasets.utkface import read_utkface
from age_assets.ml.backbones import get_backbone
from age_assets.ml.estimator import Stack, train_estimator
from age_assets.ml.features import model_input
from age_assets.ml.images import write_image_stack
from age_assets.ml.metrics import mae
from age_assets.ml.models import build_model
from age_assets.ml.specs import EstimatorSpec, FitSpec, HeadSpec
from age_assets.ml.weights import weights_source

SIZE = 224


class EpochTimer(keras.callbacks.Callback):
    def on_train_begin(self, logs: dict | None = None) -> None:
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self.started = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self.seconds.append(time.perf_counter() - self.started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/utkface"))
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--valid", type=int, default=500)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--backbone", default="mobilenet_v3_small")
    parser.add_argument("--weights-dir", default="../shared/weights")
    args = parser.parse_args()

    table, _ = read_utkface(args.faces)
    table = table.sample(frac=1.0, random_state=0).reset_index(drop=True)
    rows = {"train": table.iloc[:args.train], "valid": table.iloc[args.train:args.train + args.valid]}
    weights = weights_source(args.backbone, args.weights_dir)
    head = HeadSpec()
    fit_spec = FitSpec(learning_rate=1e-3, epochs=args.epochs, patience=args.epochs, batch_size=64)
    preprocess = get_backbone(args.backbone).preprocess_input

    with tempfile.TemporaryDirectory() as tmp:
        stacks = {}
        for split, frame in rows.items():
            path = Path(tmp) / f"{split}.npy"
            write_image_stack(list(frame["face_path"]), path, SIZE)
            stacks[split] = Stack(path, frame["real_age"].to_numpy(np.float32), f"bench/{split}")

        images = {split: model_input(np.load(s.images), preprocess) for split, s in stacks.items()}
        model = build_model(args.backbone, SIZE, weights, head, train_last=0)
        timer = EpochTimer()
        keras.utils.set_random_seed(fit_spec.seed)
        model.compile(optimizer=keras.optimizers.Adam(fit_spec.learning_rate), loss="mse", metrics=["mae"])
        model.fit(images["train"], stacks["train"].targets, validation_data=(images["valid"], stacks["valid"].targets),
                  epochs=args.epochs, batch_size=fit_spec.batch_size, callbacks=[timer], verbose=0)
        study_mae = mae(model.predict(images["valid"], batch_size=64, verbose=0).reshape(-1), stacks["valid"].targets)
        study_epoch = float(np.median(timer.seconds))
        del images, model

        spec = EstimatorSpec(backbone=args.backbone, weights=weights, image_size=SIZE, head=head, fit=fit_spec)
        cache = Path(tmp) / "cache"

        def run_ours() -> tuple[np.ndarray, float, float]:
            stamps: list[float] = []
            started = time.perf_counter()
            trained = train_estimator(spec, stacks["train"], stacks["valid"], {"valid": stacks["valid"]}, cache,
                                      log=lambda message: None,
                                      on_epoch=lambda epoch, logs: stamps.append(time.perf_counter()))
            return trained.predictions["valid"], time.perf_counter() - started, float(np.median(np.diff(stamps)))

        _, first_total, _ = run_ours()
        predictions, second_total, ours_epoch = run_ours()
        ours_mae = mae(predictions, stacks["valid"].targets)
        feature_pass = first_total - second_total

    print(f"{args.backbone}, {args.train} training and {args.valid} validation faces at {SIZE} px, "
          f"{args.epochs} epochs, the study's head")
    print(f"study (fit through the frozen backbone): {study_epoch:.2f} s/epoch, validation MAE {study_mae:.2f}")
    print(f"ours (cached pooled features): {ours_epoch:.3f} s/epoch after a one-time feature pass of "
          f"{feature_pass:.1f} s, validation MAE {ours_mae:.2f}")
    print(f"speed-up per epoch: {study_epoch / ours_epoch:.0f}x; MAE difference {ours_mae - study_mae:+.2f} years")


if __name__ == "__main__":
    main()
