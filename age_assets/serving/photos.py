"""Ages of the faces in a picture: decode, detect, crop as the training faces were cropped, run the
exported model."""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from age_assets.ml.pixels import square, to_rgb
from age_assets.serving.runtime import ExportedModel

MAX_PIXELS = 40_000_000
"""Largest picture decoded, in pixels (a 40-megapixel camera): beyond it, memory and time run away."""

LOW_CONFIDENCE = 0.75
"""A face the detector keeps but scores under this is flagged ``low_confidence`` (the CSV of
``predict``, the JSON of ``serve``): measured by ``bench/phantom_faces.py``, phantoms that pass the
detector's rule score under it, and so do some small real faces."""


class PhotoError(ValueError):
    """The bytes are not a picture that can be read; the message names the file and says why."""


class PhotoTooLarge(PhotoError):
    """More pixels than the limit allows."""


class NotOneFace(PhotoError):
    """A picture with no face, or several, where one face is needed."""


@dataclass(frozen=True)
class FaceAge:
    """One face: where it is, how sure the detector was, and what the model says of it."""

    index: int
    box: tuple[int, int, int, int]  # x, y, width, height in pixels of the upright picture
    score: float | None  # detector score; None where detection was skipped (the picture is a face crop)
    age: float
    bucket: str
    probabilities: dict[str, float]  # bucket label -> probability
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Coverage in percent (``"80"``, ``"90"``) -> (low, high) age: the true age lies inside for that
    share of faces like the validation faces; empty for an export without intervals."""

    @property
    def low_confidence(self) -> bool:
        """Kept by the detector, but scored under ``LOW_CONFIDENCE``: perhaps no face at all."""
        return self.score is not None and self.score < LOW_CONFIDENCE


def decode_photo(data: bytes, name: str, max_pixels: int = MAX_PIXELS, draft: int | None = None) -> np.ndarray:
    """uint8 RGB [H, W, 3], upright per EXIF orientation, any format and mode Pillow reads.

    The pixel limit is checked from the header, before anything is decoded. ``draft`` lets a JPEG
    decode at the smallest DCT scale that keeps both sides at least that long, as ``image_arrays``
    decodes training faces; without it the picture keeps its own size, so boxes are in its pixels.
    """
    if not data:
        raise PhotoError(f"{name}: empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            width, height = image.size
            if width * height > max_pixels:
                raise PhotoTooLarge(f"{name}: {width}x{height} pixels, over the limit of {max_pixels:,}")
            if draft:
                image.draft("RGB", (draft, draft))
            upright = ImageOps.exif_transpose(image)
            return np.asarray(to_rgb(upright))
    except PhotoError:
        raise
    except Image.DecompressionBombError as error:
        # Pillow's own guard (twice Image.MAX_IMAGE_PIXELS) fires inside Image.open, before the check above.
        raise PhotoTooLarge(f"{name}: more pixels than the limit of {max_pixels:,} ({error})") from None
    except UnidentifiedImageError:
        raise PhotoError(f"{name}: not an image Pillow can read") from None
    except (OSError, ValueError) as error:
        raise PhotoError(f"{name}: damaged or truncated image ({error})") from error


class AgeEstimator:
    """The exported model plus, unless ``detect`` is off, the face detector.

    With ``detect`` off every picture is taken as one face crop and squared the way the training
    faces were (``image_arrays``).
    """

    def __init__(self, model: Path, detect: bool = True, threads: int | None = None) -> None:
        self.model = ExportedModel(model, threads)
        self.image_size = self.model.image_size
        self.detector = None
        if detect:
            from age_assets.serving.detector import FaceDetector

            self.detector = FaceDetector(threads=threads)

    def faces(self, image: np.ndarray) -> list[FaceAge]:
        """Every face found in ``image`` (uint8 RGB [H, W, 3]), largest detector score first."""
        if self.detector is None:
            return self.crops([image])
        from age_assets.serving.face_crops import cut_faces

        found = cut_faces(image, self.detector, self.image_size)
        boxes = [(round(x), round(y), round(w), round(h)) for x, y, w, h in (f.box for f, _ in found)]
        return self._ages([crop for _, crop in found], boxes, [round(float(f.score), 4) for f, _ in found],
                          list(range(len(found))))

    def crops(self, images: Sequence[np.ndarray]) -> list[FaceAge]:
        """One FaceAge for each picture taken whole as a face crop (index 0, the picture as its box),
        squared the way ``image_arrays`` squares training faces."""
        return self._ages([square(image, self.image_size) for image in images],
                          [(0, 0, image.shape[1], image.shape[0]) for image in images],
                          [None] * len(images), [0] * len(images))

    def _ages(self, crops: list[np.ndarray], boxes: list[tuple[int, int, int, int]],
              scores: list[float | None], indices: list[int]) -> list[FaceAge]:
        if not crops:
            return []
        ages, buckets = self.model.predict(np.stack(crops))
        intervals = self.model.intervals(ages)
        labels = self.model.bucket_labels
        return [FaceAge(i, box, score, round(float(age), 2), labels[int(np.argmax(p))],
                        {label: round(float(v), 4) for label, v in zip(labels, p)},
                        {key: (round(float(low[n]), 2), round(float(high[n]), 2))
                         for key, (low, high) in intervals.items()})
                for n, (i, box, score, age, p) in enumerate(zip(indices, boxes, scores, ages, buckets))]


class FaceCutter:
    """The one face of a whole photo, cut as ``predict`` cuts every face: ``decode_photo``, the face
    detector and the crop rule (``face_crops.cut_faces``). ``image_arrays`` reads whole photos with it,
    so a model is trained and evaluated on the faces it will be given."""

    def __init__(self, size: int, max_pixels: int = MAX_PIXELS, threads: int | None = None) -> None:
        from age_assets.serving.detector import FaceDetector

        self.size, self.max_pixels = size, max_pixels
        self.detector = FaceDetector(threads=threads)

    def __call__(self, path: str | Path) -> np.ndarray:
        """uint8 RGB [size, size, 3]; ``PhotoError`` naming the file where it cannot be read, and
        ``NotOneFace`` where the detector finds no face or several."""
        from age_assets.serving.face_crops import cut_faces

        try:
            data = Path(path).read_bytes()
        except OSError as error:
            raise PhotoError(f"{path}: {error.strerror}") from error
        found = cut_faces(decode_photo(data, str(path), self.max_pixels), self.detector, self.size)
        if len(found) != 1:
            raise NotOneFace(f"{path}: {'no face' if not found else f'{len(found)} faces'} found where one is needed")
        return found[0][1]
