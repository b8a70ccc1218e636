"""Decode face images and stream them into a uint8 ``.npy`` stack."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image, ImageOps

from age_assets.datasets.manifest import Skip
from age_assets.ml.npy import StackWriter
from age_assets.ml.parallel import ordered_map
from age_assets.ml.pixels import square, to_rgb
from age_assets.ml.progress import no_progress

ORIENTATION = 0x0112
"""The EXIF tag saying how to turn the stored pixels upright; 1 (or none) means they are."""
EXIF_HEADER = b"Exif\x00\x00"
"""How an Exif segment begins; a JPEG without one has no orientation to apply."""


def _draft_scale(height: int, width: int, size: int) -> int:
    """The DCT scale Pillow's draft mode picks: the largest of 8, 4, 2, 1 keeping both sides at least
    ``size``. libjpeg-turbo could also scale by 7/8, 3/4 and so on; keeping to Pillow's choices
    gives the same pixels whichever decoder reads a file."""
    fits = min(height // size, width // size)
    return next(scale for scale in (8, 4, 2, 1) if fits >= scale or scale == 1)


def _plain_jpeg(data: bytes, size: int) -> np.ndarray | None:
    """The common case, decoded by libjpeg-turbo straight into an array (simplejpeg): a YCbCr or
    greyscale JPEG without an Exif segment, within Pillow's decompression-bomb limit. None for
    anything else, which Pillow then reads (or rejects with its reason)."""
    if not simplejpeg.is_jpeg(data) or EXIF_HEADER in data:
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
        if colorspace not in ("YCbCr", "Gray") or height * width > (Image.MAX_IMAGE_PIXELS or np.inf):
            return None
        scale = _draft_scale(height, width, size)
        return simplejpeg.decode_jpeg(data, colorspace="RGB", min_height=-(-height // scale),
                                      min_width=-(-width // scale))
    except ValueError:  # damaged or unusual: Pillow decides
        return None


def load_rgb(path: str | Path, size: int) -> np.ndarray:
    """An image as uint8 RGB [size, size, 3], upright per its EXIF orientation.

    Plain JPEGs (nearly every face crop) go straight to libjpeg-turbo, skipping Pillow's image
    objects: a third less time per face. Pillow decodes everything else (every format and mode,
    EXIF orientation, its decompression-bomb limit). Both decode JPEGs at the smallest DCT scale
    still at least ``size``, which makes large photos several times cheaper to read. OpenCV
    resizes, about four times faster than Pillow: area averaging when shrinking, bilinear when
    enlarging. The image becomes a square without keeping its aspect ratio, as face crops are
    close to square already.
    """
    data = Path(path).read_bytes()
    pixels = _plain_jpeg(data, size)
    if pixels is None:
        with Image.open(io.BytesIO(data)) as image:
            image.draft("RGB", (size, size))
            upright = ImageOps.exif_transpose(image) if image.getexif().get(ORIENTATION, 1) != 1 else image
            pixels = np.asarray(to_rgb(upright))
    return square(pixels, size)


def try_load_rgb(path: str, size: int) -> np.ndarray | Skip:
    """``load_rgb``, or the reason the file cannot be read."""
    try:
        return load_rgb(path, size)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return Skip(path, f"cannot be read as an image: {error}")


def write_image_stack(
    paths: Sequence[str], out: Path, size: int, workers: int | None = None,
    progress: Callable[[int], None] = no_progress, load: Callable[[str], np.ndarray | Skip] | None = None,
) -> tuple[np.ndarray, list[Skip]]:
    """Decode ``paths`` into ``out`` (uint8 [N, size, size, 3] ``.npy``) without holding them all.

    Returns a mask of the paths that were written (in order) and the skipped ones with reasons.
    ``progress`` is called with 1 after each path. ``load`` reads one path (``try_load_rgb`` at
    ``size`` by default).
    """
    workers = workers or os.cpu_count() or 1
    read = load or (lambda p: try_load_rgb(p, size))
    kept = np.zeros(len(paths), dtype=bool)
    skipped: list[Skip] = []
    with StackWriter(out, len(paths), (size, size, 3)) as stack:
        for i, result in enumerate(ordered_map(read, paths, workers)):
            if isinstance(result, Skip):
                skipped.append(result)
            else:
                stack.append(result)
                kept[i] = True
            progress(1)
        stack.close()
    return kept, skipped
