"""Phantom faces: which rule on detector scores removes detections of faces that are not there and
keeps the small real ones.

Usage: python bench/phantom_faces.py [--faces ../shared/data/utkface] [--pictures 300]
                                     [--split test|fit] [--threads 1] [--seed 0]

Five sets of pictures (``age_assets.serving.scenes``), each ``--pictures`` long:
``tiles``        one face at 25-60% of the short side on blurred tiles cut from other faces;
``small``        one face at 8-25% on a procedural background;
``small tiles``  one face at 8-25% on face tiles;
``no face`` and ``no face tiles``: backgrounds only;
``two faces``    two real faces at 8-60% on a procedural background (a group photo).
Faces come from the ``test`` split, or with ``--split fit`` from train and valid (where a rule is
chosen). The detector runs once per picture at its lowest candidate score; every rule then filters
the same detections. Columns: share of pictures with exactly one face, on the pasted face (IoU >= 0.5),
and share with any face where there is none. The first row is the rule before (min score 0.5 alone).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from age_assets.datasets.utkface import split_of
from age_assets.serving.detector import Face, FaceDetector, ScoreRule
from age_assets.serving.photos import decode_photo
from age_assets.serving.scenes import box_iou, make_scene

SHARED_UTKFACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface"
SMALL = (0.08, 0.25)


@dataclass(frozen=True)
class Picture:
    faces: list[Face]  # everything at the lowest candidate score, best first
    boxes: list[tuple[int, int, int, int]]  # the pasted faces, none on a background only


def read(path: Path) -> np.ndarray:
    return decode_photo(path.read_bytes(), str(path))


def pictures(detector: FaceDetector, faces: list[np.ndarray], others: list[np.ndarray], n: int,
             share: tuple[float, float] | None, tiles: bool, rng: np.random.Generator) -> list[Picture]:
    found = []
    for i in range(n):
        pasted = [faces[i % len(faces)]] if share else []
        tiles_from = [others[j] for j in rng.choice(len(others), 12, replace=False)] if tiles else None
        scene = make_scene(pasted, rng, face_share=share or (0.25, 0.6), tiles_from=tiles_from)
        found.append(Picture(detector.detect(scene.image), scene.boxes))
    return found


def pairs(detector: FaceDetector, faces: list[np.ndarray], others: list[np.ndarray], n: int,
          rng: np.random.Generator) -> list[Picture]:
    """Two real faces, each 8-60% of the short side, on a procedural background: a group photo."""
    found = []
    for i in range(n):
        scene = make_scene([faces[i % len(faces)], others[i % len(others)]], rng, face_share=(0.08, 0.6))
        found.append(Picture(detector.detect(scene.image), scene.boxes))
    return found


def rate(rule: ScoreRule, found: list[Picture]) -> float:
    """Share of pictures with exactly the pasted faces (IoU >= 0.5 each), no face where none was."""
    good = 0
    for picture in found:
        kept = rule.keep(picture.faces)
        good += len(kept) == len(picture.boxes) and all(
            any(box_iou(face.box, box) >= 0.5 for face in kept) for box in picture.boxes)
    return good / len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=Path, default=SHARED_UTKFACE)
    parser.add_argument("--pictures", type=int, default=300)
    parser.add_argument("--split", choices=["test", "fit"], default="test")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    splits = ("test",) if args.split == "test" else ("train", "valid")
    paths = [p for p in sorted(args.faces.iterdir()) if p.suffix == ".jpg" and split_of(p.name) in splits]
    rng = np.random.default_rng(args.seed)
    chosen = rng.choice(len(paths), 2 * args.pictures, replace=False)
    faces = [read(paths[i]) for i in chosen[: args.pictures]]
    others = [read(paths[i]) for i in chosen[args.pictures :]]  # tiles never come from a pasted face
    detector = FaceDetector(min_score=0.5, threads=args.threads, relative_score=0.0)
    sets = {
        "tiles": pictures(detector, faces, others, args.pictures, (0.25, 0.6), True, rng),
        "small": pictures(detector, faces, others, args.pictures, SMALL, False, rng),
        "small tiles": pictures(detector, faces, others, args.pictures, SMALL, True, rng),
        "no face": pictures(detector, faces, others, args.pictures, None, False, rng),
        "no face tiles": pictures(detector, faces, others, args.pictures, None, True, rng),
        "two faces": pairs(detector, faces, others, args.pictures, rng),
    }
    rules = {"min 0.5 (before)": ScoreRule(0.5, 0.0)}
    rules |= {f"min {t:g}": ScoreRule(t, 0.0) for t in (0.6, 0.65, 0.7, 0.75)}
    rules |= {f"min 0.5, >= {r:g} x best": ScoreRule(0.5, r, 1.0) for r in (0.8, 0.85, 0.9)}
    rules |= {f"0.5, >= 0.9 x best or {s:g}": ScoreRule(0.5, 0.9, s) for s in (0.6, 0.65, 0.7, 0.75)}
    rules["default"] = ScoreRule()
    print(f"{args.pictures} pictures per set, faces from {'/'.join(splits)}; "
          "share right: exactly the one pasted face, or nothing on a background only")
    print(f"{'rule':<26}" + "".join(f"{name:>15}" for name in sets))
    for name, rule in rules.items():
        print(f"{name:<26}" + "".join(f"{rate(rule, found):>14.1%} " for found in sets.values()))
    real = [f.score for found in sets.values() for p in found for f in p.faces
            if any(box_iou(f.box, box) >= 0.5 for box in p.boxes)]
    phantom = [f.score for found in sets.values() for p in found for f in p.faces
               if not any(box_iou(f.box, box) >= 0.5 for box in p.boxes)]
    for label, scores in (("real faces", real), ("phantoms", phantom)):
        quantiles = np.quantile(scores, [0.01, 0.05, 0.5]) if scores else [np.nan] * 3
        print(f"{label}: {len(scores)} scores, 1% {quantiles[0]:.3f}, 5% {quantiles[1]:.3f}, "
              f"median {quantiles[2]:.3f}, max {max(scores, default=np.nan):.3f}")


if __name__ == "__main__":
    main()
