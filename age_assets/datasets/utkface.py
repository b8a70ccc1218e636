"""UTKFace: a folder of aligned face crops named ``AGE_GENDER_RACE_DATETIME.jpg.chip.jpg``."""

from __future__ import annotations

import hashlib
import math
import re
from pathlib import Path

import pandas as pd

from age_assets.datasets.manifest import GENDERS, MAX_LABEL_AGE, RACES, Skip, finish_manifest, image_files

SPLIT_RATIOS: tuple[float, float, float] = (0.8, 0.1, 0.1)
"""train / valid / test shares of the deterministic split."""

_AGE_PREFIX = re.compile(r"^(\d{1,3})_")
_GROUP_FIELDS = re.compile(r"^\d{1,3}_(\d)(?=_)(?:_(\d)_)?")


def split_of(name: str, ratios: tuple[float, float, float] = SPLIT_RATIOS) -> str:
    """The split of one file, from a hash of its name alone.

    Depending on nothing but the name, an image keeps its split when files are added or removed,
    so a test image never drifts into training as the folder grows.
    """
    u = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big") / 2**64
    if u < ratios[0]:
        return "train"
    if u < ratios[0] + ratios[1]:
        return "valid"
    return "test"


def age_from_name(name: str) -> int | None:
    """The leading age field of a UTKFace file name, or None when the name has none.

    Only the age is read; the gender and race fields are missing or malformed in a few real names.
    """
    match = _AGE_PREFIX.match(name)
    if match is None:
        return None
    age = int(match.group(1))
    return age if age <= MAX_LABEL_AGE else None


def groups_from_name(name: str) -> tuple[float, float]:
    """The gender and race codes of a UTKFace file name, NaN for a field that is missing or out of range.

    A name without a race field (``39_1_20170116174525125...``) still gives its gender.
    """
    match = _GROUP_FIELDS.match(name)
    if match is None:
        return math.nan, math.nan
    gender, race = (int(field) if field is not None else None for field in match.groups())
    return (float(gender) if gender is not None and gender < len(GENDERS) else math.nan,
            float(race) if race is not None and race < len(RACES) else math.nan)


def read_utkface(folder: Path, split: str | None = None) -> tuple[pd.DataFrame, list[Skip]]:
    """Manifest of a UTKFace folder, with the gender and race its names give; ``split`` puts every
    image in one split instead."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"UTKFace folder {folder} does not exist or is not a folder")
    rows: list[dict] = []
    skipped: list[Skip] = []
    for path in image_files(folder, skipped):
        age = age_from_name(path.name)
        if age is None:
            skipped.append(Skip(str(path), f"file name does not start with an age 0-{MAX_LABEL_AGE} and '_'"))
            continue
        rows.append({
            "split": split or split_of(path.name),
            "image_path": str(path),
            "face_path": str(path),
            "real_age": float(age),
            **dict(zip(("gender", "race"), groups_from_name(path.name))),
        })
    if not rows:
        raise ValueError(f"UTKFace folder {folder} holds no image named AGE_..._.jpg")
    return finish_manifest(pd.DataFrame(rows)), skipped
