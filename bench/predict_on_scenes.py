"""Faces inside larger pictures against the same faces as crops, through the exported model.

Test-split shared faces are pasted into generated scenes (`age_assets.serving.scenes`: a face at
25-60% of the picture's short side, a random place, a textured background, JPEG). Prints the share
of pictures that give exactly one face (overlapping the pasted face), the MAE on the pictures
(detect, crop, predict) and on the same faces given as crops (`--crops`), and their difference.

Usage: python bench/predict_on_scenes.py [--data-dir DIR] [--faces 300] [--runtime litert] [--keep DIR]
                                         [--background tiles|shapes]
``--background tiles`` pastes each face on blurred tiles cut from other test faces, where a detector
most easily sees a second face that is not there (the default is procedural shapes).
A third MAE cuts the pasted square itself out of each picture: the loss from resizing and JPEG
alone, which no detector or crop rule can win back.
Targets: at least 97% of pictures give exactly one face; MAE on pictures within 0.5 years of crops.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from age_assets.cli import model_file
from age_assets.datasets.utkface import age_from_name, split_of
from age_assets.serving.photos import AgeEstimator, decode_photo
from age_assets.serving.scenes import box_iou, make_scene

SHARED_UTKFACE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "utkface"


def test_faces(folder: Path, n: int, seed: int) -> list[Path]:
    faces = sorted(p for p in folder.iterdir() if p.suffix == ".jpg" and split_of(p.name) == "test"
                   and age_from_name(p.name) is not None)
    return [faces[i] for i in np.random.default_rng(seed).choice(len(faces), n, replace=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--faces", type=int, default=300)
    parser.add_argument("--runtime", default="litert", choices=["litert", "onnx"])
    parser.add_argument("--utkface", type=Path, default=SHARED_UTKFACE)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", type=Path, help="write the generated pictures here")
    parser.add_argument("--background", choices=["shapes", "tiles"], default="shapes")
    args = parser.parse_args()

    model = model_file(None, args.data_dir, args.runtime)
    in_pictures, as_crops = AgeEstimator(model), AgeEstimator(model, detect=False)
    rng = np.random.default_rng(args.seed)
    truth, picture_ages, crop_ages, pasted_ages, outcomes, seconds = [], [], [], [], [], []
    chosen = test_faces(args.utkface, args.faces, args.seed)
    for i, path in enumerate(chosen):
        data = path.read_bytes()
        crop = decode_photo(data, str(path), draft=as_crops.image_size)
        tiles_from = None
        if args.background == "tiles":
            others = [chosen[j] for j in rng.choice(len(chosen), 13, replace=False) if chosen[j] != path][:12]
            tiles_from = [decode_photo(p.read_bytes(), str(p)) for p in others]
        scene = make_scene([decode_photo(data, str(path))], rng, tiles_from=tiles_from)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            (args.keep / f"scene_{i:04d}_{path.name}").write_bytes(scene.jpeg)
        started = time.perf_counter()
        faces = in_pictures.faces(decode_photo(scene.jpeg, f"scene {i}"))
        seconds.append(time.perf_counter() - started)
        matching = [f for f in faces if box_iou(f.box, scene.boxes[0]) >= 0.5]
        outcomes.append("one" if len(faces) == 1 and matching else "none" if not faces else
                        "missed" if not matching else "extra")
        truth.append(age_from_name(path.name))
        crop_ages.append(as_crops.faces(crop)[0].age)
        x, y, w, h = scene.boxes[0]
        pasted_ages.append(as_crops.faces(scene.image[y:y + h, x:x + w])[0].age)
        picture_ages.append(matching[0].age if matching else np.nan)
    truth, picture_ages, crop_ages, pasted_ages = map(np.array, (truth, picture_ages, crop_ages, pasted_ages))
    found = ~np.isnan(picture_ages)
    counts = {k: outcomes.count(k) for k in ("one", "none", "extra", "missed")}
    crops_mae = float(np.mean(np.abs(crop_ages - truth)))
    pictures_mae = float(np.mean(np.abs(picture_ages[found] - truth[found])))
    crops_mae_found = float(np.mean(np.abs(crop_ages[found] - truth[found])))
    print(f"{len(truth)} test faces on {args.background}, {args.runtime}, model {model}")
    print(f"exactly one face, on the pasted face: {counts['one'] / len(truth):.1%} "
          f"(none {counts['none']}, extra faces {counts['extra']}, only elsewhere {counts['missed']}); goal 97%")
    print(f"MAE as crops:          {crops_mae:.2f} years (all {len(truth)}); "
          f"{crops_mae_found:.2f} on the {found.sum()} found")
    print(f"MAE in pictures:       {pictures_mae:.2f} years (the {found.sum()} found)")
    print(f"pictures - crops:      {pictures_mae - crops_mae_found:+.2f} years on the same faces; goal within 0.5")
    pasted_mae = float(np.mean(np.abs(pasted_ages[found] - truth[found])))
    print(f"MAE on the true pasted square cut from the picture (no detector): {pasted_mae:.2f} years, "
          f"{pasted_mae - crops_mae_found:+.2f} against crops: what resizing and JPEG alone cost")
    print(f"per picture (decoded): median {np.median(seconds) * 1000:.0f} ms detect + crop + predict")


if __name__ == "__main__":
    main()
