"""Train one regressor on materialized image_arrays, outside Dagster, to try a configuration.

Usage: python bench/train_one.py BACKBONE TRAIN_LAST LEARNING_RATE [--data-dir data] [--epochs 25]
Reads the image_arrays (and augmented_train) the graph last materialized under the data dir, trains on
the plain or augmented training split with real age as target, and prints validation and test MAE, the cut and the time.
"""

import argparse
import time
from pathlib import Path

import numpy as np

from age_assets.artifacts import ImageSet
from age_assets.ml.estimator import Stack, train_estimator
from age_assets.ml.metrics import mae
from age_assets.ml.specs import EstimatorSpec, FitSpec
from age_assets.ml.weights import weights_source
from age_assets.storage import Pointer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("backbone")
    parser.add_argument("train_last", type=int)
    parser.add_argument("learning_rate", type=float)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--weights-dir", default="../shared/weights")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--patience", type=int, default=4)
    parser.add_argument("--train-on", default="plain", choices=["plain", "augmented"])
    parser.add_argument("--loss", default="mse", choices=["mse", "mae", "huber"])
    parser.add_argument("--mirror-average", action="store_true", help="average each evaluated image's and its mirror's")
    args = parser.parse_args()

    root = Path(args.data_dir).resolve()

    def materialized(asset: str) -> ImageSet:
        pointer = Pointer.read(root, asset)
        if pointer is None:
            raise SystemExit(f"{asset} is not materialized under {root}: dg launch --assets '*{asset}'")
        return ImageSet(pointer.folder, pointer.fingerprint)

    arrays = materialized("image_arrays")
    train_set = materialized("augmented_train") if args.train_on == "augmented" else arrays

    def stack(split: str, source: ImageSet = arrays) -> Stack:
        ages = source.labels(split)["real_age"].to_numpy(np.float32)
        return Stack(source.images_path(split), ages, f"{source.fingerprint}/{split}")

    image_size = arrays.images("train").shape[1]
    spec = EstimatorSpec(backbone=args.backbone, weights=weights_source(args.backbone, args.weights_dir),
                         image_size=image_size, train_last=args.train_last, mirror_average=args.mirror_average,
                         fit=FitSpec(learning_rate=args.learning_rate, loss=args.loss, epochs=args.epochs,
                                     patience=args.patience))
    started = time.perf_counter()

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.3f}" for k, v in logs.items()),
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    evaluated = {"valid": stack("valid"), "test": stack("test")}
    trained = train_estimator(spec, stack("train", train_set), evaluated["valid"], evaluated,
                              root / "cache" / "features", print, on_epoch)
    print(f"{args.backbone} train_last={args.train_last} lr={args.learning_rate} loss={args.loss} "
          f"on {args.train_on} cut={trained.boundary}: "
          f"valid MAE {mae(trained.predictions['valid'], evaluated['valid'].targets):.3f}, "
          f"test MAE {mae(trained.predictions['test'], evaluated['test'].targets):.3f}, "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
