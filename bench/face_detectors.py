"""Face detectors on synthetic pictures of test-split UTKFace faces: one face found, none, extra, time.

Usage: python bench/face_detectors.py [--faces ../shared/data/utkface] [--scenes 400] [--empty 200]
                                      [--threads 1] [--min-scores 0.3,0.4,0.5,0.6,0.7]

Each picture holds one test-split face (``age_assets.serving.scenes``); ``--empty`` more pictures
hold background only. Columns, as shares of pictures: ``one`` exactly one detection, with IoU >= 0.5
to the pasted face; ``one@centre`` exactly one detection, its centre inside the pasted face (fair to
detectors whose boxes are tighter than UTKFace's crop); ``none`` no detection; ``extra`` more than
one; ``empty>0`` background-only pictures with any detection; ``ms`` median milliseconds per
picture of detection alone. OpenCV's Haar cascade runs where OpenCV still has it (before 5.0).
A second table sweeps ``min_score`` for each BlazeFace model.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from age_assets.datasets.utkface import split_of
from age_assets.serving.detector import MODELS, FaceDetector
from age_assets.serving.scenes import Scene, box_iou, make_scene

Box = tuple[float, float, float, float]
Detect = Callable[[np.ndarray], list[Box]]


def blazeface(model: str, min_score: float, threads: int) -> Detect:
    detector = FaceDetector(model, min_score=min_score, threads=threads)
    return lambda image: [face.box for face in detector.detect(image)]


def haar() -> Detect | None:
    if not hasattr(cv2, "CascadeClassifier"):
        return None
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")

    def detect(image: np.ndarray) -> list[Box]:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
        boxes = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        return [tuple(map(float, box)) for box in boxes]

    return detect


def score(detect: Detect, scenes: list[Scene], empty: list[Scene]) -> dict[str, float]:
    one = centre = none = extra = 0
    times = []
    for scene in scenes:
        start = time.perf_counter()
        boxes = detect(scene.image)
        times.append(time.perf_counter() - start)
        (tx, ty, tw, th) = scene.boxes[0]
        none += not boxes
        extra += len(boxes) > 1
        if len(boxes) == 1:
            x, y, w, h = boxes[0]
            one += box_iou(boxes[0], scene.boxes[0]) >= 0.5
            centre += tx <= x + w / 2 <= tx + tw and ty <= y + h / 2 <= ty + th
    false = sum(bool(detect(scene.image)) for scene in empty)
    n = len(scenes)
    return {"one": one / n, "one@centre": centre / n, "none": none / n, "extra": extra / n,
            "empty>0": false / max(len(empty), 1), "ms": 1000 * float(np.median(times))}


def print_table(rows: dict[str, dict[str, float]]) -> None:
    columns = list(next(iter(rows.values())))
    print(f"{'detector':<34}" + "".join(f"{c:>11}" for c in columns))
    for name, row in rows.items():
        cells = "".join(f"{row[c]:>11.1f}" if c == "ms" else f"{row[c]:>10.1%} " for c in columns)
        print(f"{name:<34}{cells}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/data/utkface"))
    parser.add_argument("--scenes", type=int, default=400)
    parser.add_argument("--empty", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-scores", default="0.3,0.4,0.5,0.6,0.7")
    parser.add_argument("--face-share", default="0.25,0.6", help="face side range, shares of the short side")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    test = [p for p in sorted(args.faces.iterdir()) if split_of(p.name) == "test"]
    chosen = rng.choice(len(test), size=args.scenes, replace=False)
    faces = [cv2.cvtColor(cv2.imread(str(test[i])), cv2.COLOR_BGR2RGB) for i in chosen]
    low, high = map(float, args.face_share.split(","))
    scenes = [make_scene([face], rng, face_share=(low, high)) for face in faces]
    empty = [make_scene([], rng) for _ in range(args.empty)]
    print(f"{len(scenes)} pictures of one test-split face ({low:.0%}-{high:.0%} of the short side), "
          f"{len(empty)} of background only; "
          f"OpenCV {cv2.__version__}, {args.threads} thread(s)\n")

    rows = {f"blazeface {m} (0.5)": score(blazeface(m, 0.5, args.threads), scenes, empty) for m in MODELS}
    cascade = haar()
    if cascade is None:
        print(f"(OpenCV {cv2.__version__} has no CascadeClassifier: Haar skipped; it needs opencv-python-headless<5)")
    else:
        rows["opencv haar frontalface"] = score(cascade, scenes, empty)
    print_table(rows)

    print("\nmin_score sweep")
    sweep = {f"blazeface {m} ({t})": score(blazeface(m, float(t), args.threads), scenes, empty)
             for m in MODELS for t in args.min_scores.split(",")}
    print_table(sweep)


if __name__ == "__main__":
    main()
