"""Fit the rule that turns a face detection into UTKFace's crop, and measure it on test faces.

Usage: python bench/calibrate_face_crops.py [--faces ../shared/data/utkface] [--scenes 300]
                                            [--max-angle 30] [--threads 1]

Training-split faces are pasted into synthetic pictures (``age_assets.serving.scenes``); the pasted
square is exactly the training crop. For each detection matching it (IoU >= 0.5), the crop's side
and the offset of its centre from an anchor are expressed in widths of the detected box; the
medians make a rule. Three candidates: anchored on the box centre, on the mean of eyes and mouth,
and the latter with the square turned to level the detected eyes (offsets along the turned axes).
On pictures of test-split faces, upright and turned by up to ``--max-angle`` degrees about the
face, each rule's crop is compared with the true square: IoU median and 5th percentile.
The chosen rule's printed constants are ``RULE`` in ``age_assets/serving/face_crops.py``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from age_assets.datasets.utkface import split_of
from age_assets.serving.detector import Face, FaceDetector
from age_assets.serving.face_crops import CropRule
from age_assets.serving.scenes import box_corners, make_scene, polygon_iou


def pictures(
    paths: list[Path], count: int, rng: np.random.Generator, max_angle: float
) -> list[tuple[np.ndarray, np.ndarray]]:
    """(picture, [4, 2] corners of the true crop) for ``count`` one-face scenes, turned by up to ``max_angle``."""
    out = []
    for i in rng.choice(len(paths), size=count, replace=False):
        scene = make_scene([cv2.cvtColor(cv2.imread(str(paths[i])), cv2.COLOR_BGR2RGB)], rng)
        corners = box_corners(scene.boxes[0])
        if max_angle == 0:
            out.append((scene.image, corners))
            continue
        centre = corners.mean(axis=0) - 0.5  # OpenCV puts pixel centres on integers
        matrix = cv2.getRotationMatrix2D(tuple(centre), rng.uniform(-max_angle, max_angle), 1.0)
        height, width = scene.image.shape[:2]
        turned = cv2.warpAffine(scene.image, matrix, (width, height), borderMode=cv2.BORDER_REFLECT)
        out.append((turned, (corners - 0.5) @ matrix[:, :2].T + matrix[:, 2] + 0.5))
    return out


def matched(detector: FaceDetector, image: np.ndarray, truth: np.ndarray) -> Face | None:
    """The detection overlapping the true crop most, if its IoU reaches 0.5."""
    faces = detector.detect(image)
    ious = [polygon_iou(box_corners(face.box), truth) for face in faces]
    best = int(np.argmax(ious)) if faces else -1
    return faces[best] if faces and ious[best] >= 0.5 else None


def tilt_degrees(face: Face) -> float:
    (rx, ry), (lx, ly) = face.keypoints[0], face.keypoints[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


class BoxCentred(CropRule):
    """The same rule anchored on the centre of the detected box instead of the eyes and mouth."""

    def anchor(self, face: Face) -> np.ndarray:
        x, y, w, h = face.box
        return np.array([x + w / 2, y + h / 2])


def fit(pairs: list[tuple[Face, np.ndarray]], template: CropRule) -> CropRule:
    """Medians of side and centre offset, in detected box widths, along the template's crop axes."""
    sides, offsets = [], []
    for face, truth in pairs:
        width = face.box[2]
        across, down = template.axes(face)
        shift = truth.mean(axis=0) - template.anchor(face)
        offsets.append((shift @ across / width, shift @ down / width))
        sides.append(np.linalg.norm(truth[1] - truth[0]) / width)
    ox, oy = np.median(offsets, axis=0)
    return replace(template, side=round(float(np.median(sides)), 3), offset=(round(float(ox), 3), round(float(oy), 3)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/utkface"))
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--max-angle", type=float, default=30.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    names = sorted(args.faces.iterdir())
    detector = FaceDetector(threads=args.threads)
    print(f"detector: {detector.model}, min_score {detector.min_score}")

    train = [p for p in names if split_of(p.name) == "train"]
    pairs = [(face, truth) for image, truth in pictures(train, args.scenes, rng, 0)
             if (face := matched(detector, image, truth)) is not None]
    print(f"calibration: {len(pairs)} of {args.scenes} training-split pictures with a matching detection")
    templates = {
        "box, upright": BoxCentred(1.0, (0.0, 0.0), level_eyes=False),
        "upright": CropRule(1.0, (0.0, 0.0), level_eyes=False),
        "eyes levelled": CropRule(1.0, (0.0, 0.0), level_eyes=True),
    }
    rules = {name: fit(pairs, template) for name, template in templates.items()}
    angles = [abs(tilt_degrees(face)) for face, _ in pairs]
    print(f"detected eye-line tilt on upright faces: median {np.median(angles):.1f} deg, "
          f"95th percentile {np.percentile(angles, 95):.1f} deg")
    for name, rule in rules.items():
        print(f"  {name:<15} {rule}")

    test = [p for p in names if split_of(p.name) == "test"]
    print("\ntest-split IoU of the crop with the true square: median / 5th percentile (pictures without a match)")
    for label, max_angle in (("upright", 0.0), (f"turned <= {args.max_angle:g} deg", args.max_angle)):
        scenes = pictures(test, args.scenes, rng, max_angle)
        detected = [(matched(detector, image, truth), truth) for image, truth in scenes]
        missed = sum(face is None for face, _ in detected)
        regions = {"detected box": lambda face: box_corners(face.box)}
        regions |= {name: rule.corners for name, rule in rules.items()}
        for name, region in regions.items():
            ious = [polygon_iou(region(face), truth) for face, truth in detected if face is not None]
            iou = f"{np.median(ious):.3f} / {np.percentile(ious, 5):.3f}"
            print(f"  {label:<18} {name:<15} {iou}   ({missed} of {len(detected)})")


if __name__ == "__main__":
    main()
