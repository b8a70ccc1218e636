"""Train one regressor or classifier on materialized image_arrays, outside Dagster, to try a configuration.

Usage: python bench/train_one.py BACKBONE TRAIN_LAST LEARNING_RATE [--data-dir data] [--epochs 25]
Reads the image_arrays (and augmented_train) the graph last materialized under the data dir, trains on
the plain or augmented training split with real age as target, and prints the validation MAE (a
classifier's: of its median ages, and its bucket accuracy), the cut and the time. ``--test`` adds the
test split's: read it once, for a configuration already chosen on validation. ``--fgnet DIR`` adds
FG-NET's whole photos, each face cut by ``predict``'s detector and crop rule (photos without exactly
one face left out): evaluation only, the best epoch is chosen on validation. ``--published-head``
starts from the backbone's published age head and its weights (``mobilenet_v1_faces``) instead of a
new Dense layer: a regressor's age is the expectation of its softmax over years.
"""

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from age_assets.artifacts import ImageSet
from age_assets.assets.models import ClassifierConfig, ModelConfig
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.ml.estimator import Stack, train_estimator
from age_assets.ml.metrics import bucket_scores, mae
from age_assets.ml.weights import weights_source
from age_assets.storage import Pointer


def fgnet_stack(folder: Path, image_size: int, out: Path) -> Stack:
    """FG-NET's faces as ``predict`` cuts them from the whole photos, in a stack at ``out``."""
    from age_assets.datasets.fgnet import person_and_age
    from age_assets.serving.photos import FaceCutter, NotOneFace, PhotoError

    cutter, crops, ages = FaceCutter(image_size), [], []
    for photo in sorted((folder / "images").iterdir()):
        found = person_and_age(photo.name)
        if found is None:
            continue
        try:
            crops.append(cutter(photo))
        except (NotOneFace, PhotoError):
            continue
        ages.append(found[1])
    np.save(out, np.stack(crops).astype(np.uint8))
    print(f"FG-NET: {len(crops)} faces cut from the photos under {folder}")
    return Stack(out, np.array(ages, dtype=np.float32), f"fgnet/{image_size}")


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
    parser.add_argument("--copies", type=int, default=0,
                        help="with --train-on augmented, the first this many copies of each face (0: every copy)")
    parser.add_argument("--loss", default="mse", choices=["mse", "mae", "huber"])
    parser.add_argument("--output", default="sigmoid", choices=["sigmoid", "linear", "expectation"])
    parser.add_argument("--schedule", default="cosine", choices=["constant", "cosine"])
    parser.add_argument("--classifier", action="store_true", help="a classifier over years (age_sigma 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test", action="store_true", help="also score the test split")
    parser.add_argument("--mirror-average", action="store_true", help="average each evaluated image's and its mirror's")
    parser.add_argument("--oversample", default="",
                        help="draw each training face of these true-age buckets this many times an epoch, "
                             "e.g. '46-65=2,66+=3'")
    parser.add_argument("--fgnet", type=Path, help="also score FG-NET's photos under this folder (evaluation only)")
    parser.add_argument("--published-head", action="store_true",
                        help="start from the backbone's published age head and its weights")
    parser.add_argument("--dropout", type=float, default=0.5, help="after the head's Dense layer")
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

    def training_stack() -> Stack:
        plain = stack("train", train_set)
        if args.train_on == "augmented":
            plain = plain.first_copies(train_set.labels("train")["copy"].to_numpy(), args.copies)
        if not args.oversample:
            return plain
        factors = np.ones(len(BUCKET_LABELS), dtype=int)
        for item in args.oversample.split(","):
            label, factor = item.split("=")
            factors[BUCKET_LABELS.index(label)] = int(factor)
        return replace(plain, draws=factors[age_to_bucket(plain.targets)])

    image_size = arrays.images("train").shape[1]
    settings = {"train_last": args.train_last, "learning_rate": args.learning_rate, "schedule": args.schedule,
                "epochs": args.epochs, "patience": args.patience, "train_on": args.train_on, "copies": args.copies,
                "seed": args.seed, "mirror_average": args.mirror_average, "dropout": args.dropout}
    config = ClassifierConfig(**settings) if args.classifier else ModelConfig(**settings, output=args.output,
                                                                               loss=args.loss)
    spec = config.estimator_spec(args.backbone, weights_source(args.backbone, args.weights_dir), image_size)
    if args.published_head:
        spec = replace(spec, head=replace(spec.head, published=True))
    started = time.perf_counter()

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        print(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.3f}" for k, v in logs.items()),
              f"({time.perf_counter() - started:.0f} s)", flush=True)

    evaluated = {split: stack(split) for split in (["valid", "test"] if args.test else ["valid"])}
    if args.fgnet:
        evaluated["fgnet"] = fgnet_stack(args.fgnet, image_size, Path(tempfile.mkdtemp()) / "fgnet.npy")
    trained = train_estimator(spec, training_stack(), evaluated["valid"], evaluated,
                              root / "cache" / "features", print, on_epoch)
    ages = trained.ages if trained.ages is not None else trained.predictions
    scores = []
    for split, s in evaluated.items():
        scores.append(f"{split} MAE {mae(ages[split], s.targets):.3f}")
        if args.classifier:
            buckets = bucket_scores(np.argmax(trained.predictions[split], axis=1), s.targets)
            scores.append(f"{split} accuracy {buckets['accuracy']:.3f}")
    for split, s in evaluated.items():
        bands = age_to_bucket(s.targets)
        errors = np.abs(ages[split] - s.targets)
        print(f"{split} MAE per true-age bucket: " + ", ".join(
            f"{label} {errors[bands == i].mean():.2f}" for i, label in enumerate(BUCKET_LABELS) if (bands == i).any()))
    output = "published head, its expectation" if args.published_head else args.output
    what = "classifier" if args.classifier else f"{output} loss={args.loss}"
    if args.oversample:
        what += f" oversampling {args.oversample}"
    if args.published_head and args.classifier:
        what += " from the published head"
    what += f" dropout={args.dropout}"
    print(f"{args.backbone} {what} train_last={args.train_last} lr={args.learning_rate} {args.schedule} "
          f"seed={args.seed} on {args.train_on} cut={trained.boundary}: {', '.join(scores)}, "
          f"{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
