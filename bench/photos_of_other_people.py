"""The exported model on FG-NET's whole photos, through what ``predict`` does, beside the face-domain
backbone's own age head (zero-shot: it never trained here) on the same faces and on UTKFace test.

FG-NET (``../shared/data/fgnet/images``, ``PPPAaa[x].JPG``: person PPP at age aa) is read for
evaluation only: nothing is fitted on it. Prints, for each model, the share of photos that give
exactly one face, the MAE on those photos, and the MAE per age bucket with the number of faces.
The zero-shot head's age is the expectation of its softmax over 0-99 years.

Usage: python bench/photos_of_other_people.py [--data-dir DIR] [--fgnet DIR] [--utkface DIR]
       [--zero-shot WEIGHTS_JSON] [--csv FILE]
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from age_assets.cli import model_file
from age_assets.datasets.fgnet import person_and_age
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.serving.photos import AgeEstimator, FaceCutter, NotOneFace, PhotoError, decode_photo

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def bucket_table(true: np.ndarray, predicted: np.ndarray) -> dict[str, str]:
    """``MAE (faces)`` per true-age bucket."""
    buckets = age_to_bucket(true)
    errors = np.abs(predicted - true)
    return {label: f"{errors[buckets == i].mean():.2f} ({int((buckets == i).sum())})"
            for i, label in enumerate(BUCKET_LABELS) if (buckets == i).any()}


def row(model: str, faces: str, photos: int, true: np.ndarray, predicted: np.ndarray) -> dict[str, object]:
    return {"model": model, "faces": faces, "one_face_share": round(len(true) / photos, 4) if photos else None,
            "n": len(true), "mae": round(float(np.abs(predicted - true).mean()), 3),
            **bucket_table(true, predicted)}


def exported_on_photos(estimator: AgeEstimator, photos: list[Path]) -> pd.DataFrame:
    """One line per photo: its true age, the number of faces found and the age of the one face."""
    lines = []
    for path in photos:
        faces = estimator.faces(decode_photo(path.read_bytes(), str(path)))
        lines.append({"photo": path.name, "true": float(person_and_age(path.name)[1]),  # type: ignore[index]
                      "faces": len(faces), "age": faces[0].age if len(faces) == 1 else np.nan})
    return pd.DataFrame(lines)


def zero_shot_head(weights: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Crops (uint8 [N, 224, 224, 3]) to the published head's expected age."""
    from age_assets.ml.face_mobilenet import AGES, FaceMobileNet

    model = FaceMobileNet(include_top=True, weights=str(weights))
    years = np.arange(AGES, dtype=np.float64)

    def ages(crops: np.ndarray) -> np.ndarray:
        softmax = model.predict(crops.astype(np.float32), batch_size=32, verbose=0)[0]
        return softmax @ years

    return ages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--fgnet", type=Path, default=SHARED / "data" / "fgnet")
    parser.add_argument("--utkface", type=Path, default=SHARED / "data" / "utkface",
                        help="its test split for the zero-shot head")
    parser.add_argument("--zero-shot", type=Path, default=SHARED / "weights" / "hse_faceres" / "faceres-deep.json",
                        help="the face-domain backbone's published weights; 'none' to skip")
    parser.add_argument("--csv", type=Path, help="write the exported model's per-photo lines here")
    args = parser.parse_args()

    photos = sorted(p for p in (args.fgnet / "images").iterdir() if person_and_age(p.name) is not None)
    estimator = AgeEstimator(model_file(None, args.data_dir, "litert"))
    lines = exported_on_photos(estimator, photos)
    if args.csv:
        lines.to_csv(args.csv, index=False)
    one = lines[lines.faces == 1]
    rows = [row("exported_model", "FG-NET photos", len(photos), one.true.to_numpy(), one.age.to_numpy())]
    print(f"faces found per photo: {lines.faces.value_counts().sort_index().to_dict()}")

    if str(args.zero_shot) != "none":
        from age_assets.datasets.utkface import age_from_name, split_of
        from age_assets.ml.images import load_rgb

        head = zero_shot_head(args.zero_shot)
        cutter = FaceCutter(224)
        crops, true = [], []
        for path in photos:
            try:
                crops.append(cutter(path))
            except (NotOneFace, PhotoError):
                continue
            true.append(float(person_and_age(path.name)[1]))  # type: ignore[index]
        rows.append(row("zero-shot face head", "FG-NET photos", len(photos), np.array(true), head(np.stack(crops))))
        test = sorted(p for p in args.utkface.iterdir() if p.suffix == ".jpg" and split_of(p.name) == "test"
                      and age_from_name(p.name) is not None)
        ages = np.array([age_from_name(p.name) for p in test], dtype=float)
        rows.append(row("zero-shot face head", "UTKFace test crops", len(test), ages,
                        head(np.stack([load_rgb(p, 224) for p in test]))))
    print(pd.DataFrame(rows).to_markdown(index=False))


if __name__ == "__main__":
    main()
