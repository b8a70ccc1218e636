"""``age-assets predict PATH...``: the stored ensemble's age for each image, as CSV on stdout."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np

from age_assets.datasets.manifest import Skip
from age_assets.ml.images import try_load_rgb

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def image_files(paths: list[str]) -> list[Path]:
    """Named files as given; folders expand to the image files directly inside them, sorted."""
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def ensemble_folder(data_dir: Path) -> Path:
    pointer = data_dir / "pointers" / "ensemble.json"
    if not pointer.is_file():
        raise SystemExit(f"age-assets: no ensemble under {data_dir}; build one first: "
                         "dagster asset materialize -m age_assets --select '*ensemble'")
    return data_dir / json.loads(pointer.read_text())["folder"]


def predict(args: argparse.Namespace) -> int:
    from age_assets.ml.predict import EnsemblePredictor, ModelLoadError  # keras loads only for this command

    try:
        predictor = EnsemblePredictor(Path(args.ensemble) if args.ensemble else ensemble_folder(Path(args.data_dir)))
    except ModelLoadError as error:
        print(f"age-assets: {error}", file=sys.stderr)
        return 2
    writer = csv.writer(sys.stdout)
    writer.writerow(["path", "age"])
    failed = 0
    files = image_files(args.paths)
    for start in range(0, len(files), args.batch):
        loaded = [(path, try_load_rgb(str(path), predictor.image_size)) for path in files[start:start + args.batch]]
        good = [(path, image) for path, image in loaded if not isinstance(image, Skip)]
        for path, image in loaded:
            if isinstance(image, Skip):
                failed += 1
                print(f"age-assets: {path}: {image.reason}", file=sys.stderr)
        if good:
            ages = predictor.predict(np.stack([image for _, image in good]))
            writer.writerows([str(path), f"{age:.1f}"] for (path, _), age in zip(good, ages))
    sys.stdout.flush()
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="age-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="ages of images (files or folders) from the stored ensemble")
    p.add_argument("paths", nargs="+", help="image files, or folders of them")
    p.add_argument("--data-dir", default=os.environ.get("AGE_ASSETS_DATA_DIR", "data"),
                   help="storage root holding the ensemble (default: $AGE_ASSETS_DATA_DIR or ./data)")
    p.add_argument("--ensemble", help="an ensemble artifact folder, instead of the latest one under --data-dir")
    p.add_argument("--batch", type=int, default=64, help="images per batch")
    args = parser.parse_args(argv)
    return predict(args)


if __name__ == "__main__":
    sys.exit(main())
