"""FG-NET: whole photos named ``images/PPPAaa[x].JPG``, person PPP at age aa (x tells two photos of
one age apart).

The photos are not face crops (scanned prints over several decades, many greyscale, half of them
children), so the manifest leaves ``face_path`` empty: ``image_arrays`` then cuts each face with the
detector and crop rule that ``predict`` uses.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from age_assets.datasets.manifest import MAX_LABEL_AGE, Skip, finish_manifest, image_files
from age_assets.datasets.utkface import split_of

_NAME = re.compile(r"^(\d{3})a(\d{2})[a-z]?$", re.IGNORECASE)


def person_and_age(name: str) -> tuple[int, int] | None:
    """(person, age) from a file name such as ``001A02.JPG`` or ``012A43b.JPG``; None for another name."""
    match = _NAME.match(Path(name).stem)
    return (int(match.group(1)), int(match.group(2))) if match else None


def read_fgnet(folder: Path, split: str | None = None) -> tuple[pd.DataFrame, list[Skip]]:
    """Manifest of an FG-NET folder (its ``images/`` subfolder, or the folder itself).

    Without ``split``, each person's photos all fall in one split, drawn from a hash of the person's
    number, so that no one is trained on and tested on.
    """
    folder = Path(folder)
    images = folder / "images" if (folder / "images").is_dir() else folder
    if not images.is_dir():
        raise FileNotFoundError(f"FG-NET folder {folder} does not exist or is not a folder")
    rows: list[dict] = []
    skipped: list[Skip] = []
    for path in image_files(images, skipped):
        parsed = person_and_age(path.name)
        if parsed is None or parsed[1] > MAX_LABEL_AGE:
            skipped.append(Skip(str(path), "file name is not FG-NET's PPPAaa.JPG (person PPP at age aa)"))
            continue
        person, age = parsed
        rows.append({"split": split or split_of(f"fgnet person {person}"), "image_path": str(path),
                     "face_path": None, "real_age": float(age)})
    if not rows:
        raise ValueError(f"FG-NET folder {images} holds no photo named PPPAaa.JPG")
    return finish_manifest(pd.DataFrame(rows)), skipped
