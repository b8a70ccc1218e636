"""``age-assets predict`` (ages of the faces in pictures, as CSV) and ``age-assets serve`` (a web page
and JSON API), both on the exported model: no TensorFlow and no Dagster are imported. ``age-assets
gc`` (``age_assets/gc.py``) cleans the data dir."""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from age_assets.gc import add_parser as gc_parser, gc

if TYPE_CHECKING:
    import numpy as np

    from age_assets.serving.photos import AgeEstimator, FaceAge
    from age_assets.storage import Pointer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
RUNTIME_FILES = {"litert": "age_estimator.tflite", "onnx": "age_estimator.onnx"}
BUILD_HINT = ("build it first: dg launch --assets '*exported_model'  "
              "(or: dagster asset materialize -m age_assets --select '*exported_model')")


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


def model_file(model: str | None, data_dir: str, runtime: str) -> Path:
    """``--model`` (a file, or an export folder), else the promoted model under the data dir (the newest
    ``exported_model`` where none was promoted yet, saying so)."""
    if model:
        path = Path(model)
        return path / RUNTIME_FILES[runtime] if path.is_dir() else path
    pointer = model_in_use(data_dir)
    return pointer.folder / RUNTIME_FILES[runtime]


def model_in_use(data_dir: str) -> Pointer:
    """The ``promoted_model`` pointer under the data dir, else the ``exported_model`` one (with a note on
    stderr); SystemExit naming what to build where there is neither."""
    from age_assets.storage import Pointer

    promoted = Pointer.read(Path(data_dir), "promoted_model")
    if promoted is not None:
        return promoted
    newest = Pointer.read(Path(data_dir), "exported_model")
    if newest is None:
        raise SystemExit(f"age-assets: no exported model under {data_dir}; {BUILD_HINT}")
    print(f"age-assets: no model promoted under {data_dir} yet; using the newest export {newest.folder.name} "
          f"(promote one with: dg launch --assets promoted_model)", file=sys.stderr)
    return newest


def _follow_promoted(data_dir: str, runtime: str) -> Callable[[], tuple[Path, str]]:
    """Where the promoted model is now, for ``serve`` to follow (the newest export until one is promoted)."""
    from age_assets.storage import Pointer

    def locate() -> tuple[Path, str]:
        pointer = Pointer.read(Path(data_dir), "promoted_model") or model_in_use(data_dir)
        return pointer.folder / RUNTIME_FILES[runtime], pointer.fingerprint

    return locate


def _estimator(args: argparse.Namespace) -> AgeEstimator:
    from age_assets.serving.photos import AgeEstimator

    return AgeEstimator(model_file(args.model, args.data_dir, args.runtime), detect=not args.crops,
                        threads=args.threads)


def _decoded(path: Path, args: argparse.Namespace, draft: int | None) -> np.ndarray | str:
    """The picture's pixels, or the error message that names it."""
    from age_assets.serving.photos import PhotoError, decode_photo

    try:
        return decode_photo(path.read_bytes(), str(path), args.max_pixels, draft)
    except (OSError, PhotoError) as error:
        return str(error) if isinstance(error, PhotoError) else f"{path}: {error.strerror}"


def interval_columns(coverages: list[str]) -> list[str]:
    """``age_low_80``, ``age_high_80``, ... for each coverage of the export's intervals."""
    return [f"age_{side}_{key}" for key in coverages for side in ("low", "high")]


def _interval_cells(face: FaceAge) -> dict[str, float]:
    return {f"age_{side}_{key}": value for key, bounds in face.intervals.items()
            for side, value in zip(("low", "high"), bounds)}


def _face_rows(path: Path, faces: list[FaceAge]) -> Iterator[dict[str, object]]:
    if not faces:
        yield {"path": path, "note": "no face found"}
    for face in faces:
        x, y, width, height = face.box
        yield {"path": path, "face": face.index, "x": x, "y": y, "width": width, "height": height,
               "score": face.score, "low_confidence": "" if face.score is None else face.low_confidence,
               "age": f"{face.age:.1f}",
               **{column: f"{value:.1f}" for column, value in _interval_cells(face).items()}, "bucket": face.bucket,
               **{f"p_{label}": p for label, p in face.probabilities.items()}}


def _rows(files: list[Path], estimator: AgeEstimator, args: argparse.Namespace) -> Iterator[dict[str, object]]:
    """CSV rows in file order: a row per face, or one row saying why a picture has none.

    Pictures decode in threads ahead of the model; face crops (``--crops``) go to the model
    ``--batch`` at a time, whole pictures one by one through the detector.
    """

    from age_assets.ml.parallel import ordered_map

    size = estimator.image_size
    decoded = ordered_map(lambda path: (path, _decoded(path, args, size if args.crops else None)), files,
                          workers=args.threads or 2)
    batch: list[tuple[Path, np.ndarray]] = []

    def flush() -> Iterator[dict[str, object]]:
        for (path, _), face in zip(batch, estimator.crops([image for _, image in batch])):
            yield from _face_rows(path, [face])
        batch.clear()

    for path, image in decoded:
        if isinstance(image, str):
            print(f"age-assets: {image}", file=sys.stderr)
            yield {"path": path, "note": f"error: {image}"}
        elif args.crops:
            batch.append((path, image))
            if len(batch) == args.batch:
                yield from flush()
        else:
            faces = estimator.faces(image)
            if args.draw:
                from age_assets.serving.drawing import draw_faces

                draw_faces(image, faces).save(Path(args.draw) / f"{path.stem}.jpg", quality=90)
            yield from _face_rows(path, faces)
    if batch:
        yield from flush()


def predict(args: argparse.Namespace) -> int:
    from age_assets.serving.runtime import ModelLoadError

    try:
        estimator = _estimator(args)
    except ModelLoadError as error:
        print(f"age-assets: {error}", file=sys.stderr)
        return 2
    if args.draw:
        Path(args.draw).mkdir(parents=True, exist_ok=True)
    coverages = estimator.model.interval_table.coverages if estimator.model.interval_table else []
    columns = ["path", "face", "x", "y", "width", "height", "score", "low_confidence", "age",
               *interval_columns(coverages), "bucket",
               *[f"p_{label}" for label in estimator.model.bucket_labels], "note"]
    writer = csv.DictWriter(sys.stdout, columns, restval="")
    writer.writeheader()
    failed = False
    for row in _rows(image_files(args.paths), estimator, args):
        failed |= str(row.get("note", "")).startswith("error")
        writer.writerow(row)
    sys.stdout.flush()
    return 1 if failed else 0


def serve(args: argparse.Namespace) -> int:
    from age_assets.serving.runtime import ModelLoadError

    try:
        from age_assets.serving.web import ServeLimits, serve as run_server
    except ImportError as error:
        print(f"age-assets: serve needs the 'serve' extra ({error}): pip install 'age_assets[serve]'", file=sys.stderr)
        return 2
    limits = ServeLimits(max_upload_bytes=int(args.max_upload_mb * 1e6), max_pixels=args.max_pixels,
                         max_concurrent=args.max_concurrent)
    try:
        model = model_file(args.model, args.data_dir, args.runtime) if args.model else \
            _follow_promoted(args.data_dir, args.runtime)
        run_server(model, args.host, args.port, limits, not args.crops)
    except ModelLoadError as error:
        print(f"age-assets: {error}", file=sys.stderr)
        return 2
    return 0


def _model_options(parser: argparse.ArgumentParser) -> None:
    from age_assets.serving.photos import MAX_PIXELS

    parser.add_argument("--data-dir", default=os.environ.get("AGE_ASSETS_DATA_DIR", "data"),
                        help="storage root holding exported_model (default: $AGE_ASSETS_DATA_DIR or ./data)")
    parser.add_argument("--model", help="an exported .tflite or .onnx file, or an export folder, instead of the "
                                        "promoted model under --data-dir (which serve follows as it changes)")
    parser.add_argument("--runtime", choices=sorted(RUNTIME_FILES), default="litert",
                        help="LiteRT (default: starts in a tenth of a second) or ONNX Runtime")
    parser.add_argument("--crops", action="store_true",
                        help="the pictures are face crops already: skip detection, one face each")
    parser.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                        help="refuse larger pictures (default %(default)s)")
    parser.add_argument("--threads", type=int, help="CPU threads for the model and the detector (default: up to 4)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="age-assets", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser("predict", help="ages of the faces in pictures (files or folders), as CSV on stdout")
    p.add_argument("paths", nargs="+", help="image files, or folders of them")
    _model_options(p)
    p.add_argument("--draw", metavar="DIR", help="also write each picture with its faces boxed and aged into DIR")
    p.add_argument("--batch", type=int, default=32, help="face crops per model call with --crops (default %(default)s)")
    s = commands.add_parser("serve", help="a web page and JSON API (POST /predict) for the exported model")
    _model_options(s)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default %(default)s: this machine only)")
    s.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    s.add_argument("--max-upload-mb", type=float, default=10, help="largest upload in MB (default %(default)s)")
    s.add_argument("--max-concurrent", type=int, default=2, help="pictures analysed at once (default %(default)s)")
    gc_parser(commands)
    args = parser.parse_args(argv)
    return {"predict": predict, "serve": serve, "gc": gc}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
