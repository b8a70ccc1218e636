"""Cut a detected face out of a picture the way UTKFace's training crops frame a face.

The rule (``RULE``): a square of side 1.0 detected box widths, turned so the detected eyes lie
level (UTKFace's crops are aligned), centred 0.067 box widths below and 0.009 to the right of the
mean of the eyes and the mouth, along the turned axes. The offsets are medians over about 300
training-split faces pasted into synthetic pictures (``bench/calibrate_face_crops.py``), where the
median side is 1.076 box widths. The side is 7% tighter than that median because the models
forgive a crop that is too tight more than one too loose: on 300 validation faces in pictures, the
MAE gap to the same faces as crops was +0.50 years at 1.076, +0.86 at 1.13 and within 0.15 of zero
for every side tried from 0.92 to 1.03 (``bench/predict_on_scenes.py``). On 600 other validation
faces the gap at 1.0 was +0.46, and on the test faces +0.63 (+0.73 at 1.076): the first sample
flattered the tighter side, which still helps a little.
Anchored on the eyes and mouth the crop overlaps the true one better than a square around the
box centre (median IoU 0.92 against 0.87 at the calibrated side), and levelling the eyes keeps
that on faces turned up to 30 degrees (0.89 against 0.78).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from age_assets.serving.detector import Face, FaceDetector


@dataclass(frozen=True)
class CropRule:
    """Where the training-style crop lies relative to a detection, in widths of the detected box."""

    side: float  # side of the square crop
    offset: tuple[float, float]  # crop centre minus the anchor, along the crop's x (right) and y (down) axes
    level_eyes: bool  # turn the square so the detected eyes lie on a level line

    def anchor(self, face: Face) -> np.ndarray:
        """The mean of both eyes and the mouth: UTKFace's crops sit about four times steadier around it
        than around the centre of the detected box."""
        return face.keypoints[[0, 1, 3]].mean(axis=0)

    def axes(self, face: Face) -> tuple[np.ndarray, np.ndarray]:
        """Unit vectors of the crop's x and y axes in the picture."""
        angle = 0.0
        if self.level_eyes:
            (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
            angle = math.atan2(ly - ry, lx - rx)
        return np.array([math.cos(angle), math.sin(angle)]), np.array([-math.sin(angle), math.cos(angle)])

    def corners(self, face: Face) -> np.ndarray:
        """[4, 2] picture pixels of the crop's top-left, top-right, bottom-right, bottom-left corners."""
        width = face.box[2]
        across, down = self.axes(face)
        centre = self.anchor(face) + width * (self.offset[0] * across + self.offset[1] * down)
        half = self.side * width / 2
        steps = ((-1, -1), (1, -1), (1, 1), (-1, 1))
        return np.stack([centre + half * (sx * across + sy * down) for sx, sy in steps])


RULE = CropRule(side=1.0, offset=(0.009, 0.067), level_eyes=True)


def crop_face(image: np.ndarray, face: Face, size: int, rule: CropRule = RULE) -> np.ndarray:
    """uint8 [size, size, 3] crop of ``face``; parts outside the picture repeat its border pixels.

    The square is first cut out at about its own resolution (bilinear), then area-averaged down to
    ``size`` when larger, as the training images were resized; a small face is enlarged bilinearly.
    """
    corners = rule.corners(face)
    side = float(np.linalg.norm(corners[1] - corners[0]))
    n = max(size, round(side))
    # Pixel centres sit at +0.5 in detector coordinates and at integers in OpenCV's.
    source = (corners[:3] - 0.5).astype(np.float32)
    target = (np.array([[0, 0], [n, 0], [n, n]]) - 0.5).astype(np.float32)
    matrix = cv2.getAffineTransform(source, target)
    upright = cv2.warpAffine(image, matrix, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return upright if n == size else cv2.resize(upright, (size, size), interpolation=cv2.INTER_AREA)


def cut_faces(image: np.ndarray, detector: FaceDetector, size: int,
              rule: CropRule = RULE) -> list[tuple[Face, np.ndarray]]:
    """Every face ``detector`` finds in ``image``, best score first, each cut by ``rule``: the one path
    from a whole photo to the model's input, in ``predict``, ``serve`` and ``image_arrays``."""
    return [(face, crop_face(image, face, size, rule)) for face in detector.detect(image)]
