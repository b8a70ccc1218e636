"""Synthetic pictures with faces in them, where every face's true place is known.

Face crops are pasted at random places onto busy procedural backgrounds (gradients, smooth
colour noise, stripes, random shapes, some in skin tones) or onto a harder one of blurred tiles cut
from other faces (``face_tiles``), and the picture goes through JPEG once, as a user's photo would.
Detector and crop tests and benchmarks are measured on these.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

WIDTHS = (480, 960)  # landscape range; portrait pictures swap width and height
HEIGHTS = (360, 720)
FACE_SHARE = (0.25, 0.60)  # face side as a share of the picture's short side
JPEG_QUALITY = 85
TILE_SHARE = (0.1, 0.3)  # tile side as a share of the picture's short side
TILE_BLUR = (0.04, 0.12)  # Gaussian sigma as a share of the tile side


@dataclass(frozen=True)
class Scene:
    """A synthetic picture as a user would send it, and where its faces are."""

    jpeg: bytes
    image: np.ndarray  # uint8 RGB [H, W, 3], decoded from ``jpeg``
    boxes: list[tuple[int, int, int, int]]  # x, y, width, height of each pasted face, in input order


def _colour(rng: np.random.Generator) -> np.ndarray:
    """A random RGB colour; a third are skin tones, which a face detector may find tempting."""
    if rng.random() < 1 / 3:
        hsv = np.array([[[rng.uniform(5, 20), rng.uniform(60, 170), rng.uniform(90, 250)]]], dtype=np.uint8)
        return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)
    return rng.uniform(0, 255, 3).astype(np.float32)


def background(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """uint8 RGB [height, width, 3]: gradient, smooth colour noise, stripes, shapes, grain."""
    # A gradient between two colours plus smooth colour noise, drawn on a few cells and enlarged.
    cells_w, cells_h = int(rng.integers(3, 12)), int(rng.integers(3, 12))
    angle = rng.uniform(0, np.pi)
    ramp = np.linspace(0, np.cos(angle), cells_w)[None, :, None] + np.linspace(0, np.sin(angle), cells_h)[:, None, None]
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-6)
    cells = _colour(rng) * (1 - ramp) + _colour(rng) * ramp
    cells += rng.uniform(-0.5, 0.5, cells.shape) * rng.uniform(40, 140)
    canvas = cv2.resize(cells.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC)
    y, x = np.arange(height, dtype=np.float32)[:, None], np.arange(width, dtype=np.float32)[None, :]
    stripe_angle, period = rng.uniform(0, np.pi), rng.uniform(8, 80)
    stripes = np.sin(2 * np.pi * (x * np.cos(stripe_angle) + y * np.sin(stripe_angle)) / period)
    canvas += stripes[..., None] * (_colour(rng) - 128) * rng.uniform(0, 0.4)
    canvas = np.clip(canvas, 0, 255).astype(np.uint8)
    short = min(width, height)
    for _ in range(int(rng.integers(8, 30))):
        colour = tuple(float(c) for c in _colour(rng))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        extent = int(rng.uniform(0.03, 0.3) * short)
        kind = rng.integers(4)
        if kind == 0:
            axes = (extent, int(extent * rng.uniform(0.5, 1.5)))
            cv2.ellipse(canvas, centre, axes, rng.uniform(0, 180), 0, 360, colour, -1, cv2.LINE_AA)
        elif kind == 1:
            corner = (centre[0] + extent, centre[1] + int(extent * rng.uniform(0.3, 2)))
            cv2.rectangle(canvas, centre, corner, colour, -1)
        elif kind == 2:
            points = rng.integers(-extent, extent + 1, (int(rng.integers(3, 7)), 2)) + centre
            cv2.fillPoly(canvas, [points.astype(np.int32)], colour, cv2.LINE_AA)
        else:
            end = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(canvas, centre, end, colour, int(rng.integers(1, 12)), cv2.LINE_AA)
    if rng.random() < 0.5:
        canvas = cv2.GaussianBlur(canvas, (0, 0), rng.uniform(0.5, 2.5))
    grain = rng.standard_normal(canvas.shape, dtype=np.float32) * rng.uniform(2, 10)
    return np.clip(canvas + grain, 0, 255).astype(np.uint8)


def face_tiles(width: int, height: int, others: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """uint8 RGB [height, width, 3]: a grid of blurred pieces of ``others`` (face crops), skin and
    eyes and mouths everywhere, the background on which a detector most easily sees a face that is
    not there."""
    if not others:
        raise ValueError("face_tiles needs at least one face to cut tiles from")
    canvas = np.empty((height, width, 3), np.uint8)
    side = max(8, int(rng.uniform(*TILE_SHARE) * min(width, height)))
    for y in range(0, height, side):
        for x in range(0, width, side):
            face = others[int(rng.integers(len(others)))]
            h, w = face.shape[:2]
            cut = max(4, int(rng.uniform(0.3, 1.0) * min(h, w)))
            top, left = int(rng.integers(0, h - cut + 1)), int(rng.integers(0, w - cut + 1))
            tile = cv2.resize(face[top : top + cut, left : left + cut], (side, side), interpolation=cv2.INTER_AREA)
            tile = cv2.GaussianBlur(tile, (0, 0), rng.uniform(*TILE_BLUR) * side)
            canvas[y : y + side, x : x + side] = tile[: height - y, : width - x]
    return canvas


def make_scene(
    faces: list[np.ndarray],
    rng: np.random.Generator,
    size: tuple[int, int] | None = None,
    face_share: tuple[float, float] = FACE_SHARE,
    tiles_from: list[np.ndarray] | None = None,
) -> Scene:
    """A JPEG picture holding each face once, none overlapping; ``size`` (width, height) or random.

    The background is procedural (``background``), or with ``tiles_from`` blurred tiles cut from
    those faces (``face_tiles``); they should be other faces than the ones pasted.

    Each face's longer side is a share of the picture's short side drawn from ``face_share``. The
    long side is cut into one band per face and each face lies inside its own band, so faces never
    overlap; with several faces the upper size bound shrinks to the band where needed.
    """
    if size is None:
        width, height = int(rng.integers(WIDTHS[0], WIDTHS[1] + 1)), int(rng.integers(HEIGHTS[0], HEIGHTS[1] + 1))
        if rng.random() < 0.5:
            width, height = height, width
    else:
        width, height = size
    image = face_tiles(width, height, tiles_from, rng) if tiles_from else background(width, height, rng)
    landscape = width >= height
    long_side, short_side = max(width, height), min(width, height)
    band = long_side // max(len(faces), 1)
    largest = min(face_share[1] * short_side, band)
    boxes = []
    for face, slot in zip(faces, rng.permutation(len(faces))):
        side = rng.uniform(min(face_share[0] * short_side, largest), largest)
        scale = side / max(face.shape[:2])
        w, h = max(1, round(face.shape[1] * scale)), max(1, round(face.shape[0] * scale))
        along, across = (w, h) if landscape else (h, w)
        start = int(slot) * band
        a = int(rng.integers(start, start + band - along + 1))
        c = int(rng.integers(0, short_side - across + 1))
        x, y = (a, c) if landscape else (c, a)
        resized = cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        image[y : y + h, x : x + w] = resized
        boxes.append((x, y, w, h))
    ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError("OpenCV could not encode the scene as JPEG")
    bgr = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if bgr is None:
        raise RuntimeError("OpenCV could not decode the scene it encoded")
    decoded = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    return Scene(encoded.tobytes(), decoded, boxes)


def box_corners(box: tuple[float, float, float, float]) -> np.ndarray:
    """[4, 2] corners of an x, y, width, height box: top-left, top-right, bottom-right, bottom-left."""
    x, y, w, h = box
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def polygon_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two convex polygons given as [N, 2] corners in order."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    inter, _ = cv2.intersectConvexConvex(a, b)
    union = cv2.contourArea(a) + cv2.contourArea(b) - inter
    return float(inter / union) if union > 0 else 0.0


def box_iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Intersection over union of two x, y, width, height boxes."""
    return polygon_iou(box_corners(a), box_corners(b))
