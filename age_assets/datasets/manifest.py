"""The manifest table that every dataset reader returns: one row per image."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

SPLITS: tuple[str, ...] = ("train", "valid", "test")

COLUMNS: list[str] = [
    "split",
    "image_path",
    "face_path",
    "real_age",
    "apparent_age_mean",
    "apparent_age_std",
    "num_ratings",
    "gender",
    "race",
]
"""``image_path`` is the full image, ``face_path`` the face crop (the same file for datasets
that ship aligned crops only); the apparent-age columns are NaN where a dataset has no votes,
``gender`` and ``race`` (codes of ``GENDERS`` and ``RACES``) NaN where it names none."""

GENDERS: tuple[str, ...] = ("male", "female")
"""``gender`` code -> name, as UTKFace numbers them."""
RACES: tuple[str, ...] = ("White", "Black", "Asian", "Indian", "Others")
"""``race`` code -> name, as UTKFace numbers them."""

MAX_LABEL_AGE = 120
"""The oldest age a label may give; anything above is a broken label (UTKFace's oldest face is 116)."""


@dataclass(frozen=True)
class Skip:
    """An input left out of a manifest, with the reason a user can act on."""

    path: str
    reason: str


def finish_manifest(rows: pd.DataFrame) -> pd.DataFrame:
    """Order columns and rows so that equal datasets give equal tables."""
    table = rows.reindex(columns=COLUMNS)
    table["split"] = pd.Categorical(table["split"], categories=list(SPLITS))
    table = table.sort_values(["split", "face_path"], kind="stable").reset_index(drop=True)
    table["split"] = table["split"].astype(str)
    return table


def file_stats(paths: Iterable[str | Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) per file: enough to notice an image that was replaced or edited."""
    out = []
    for p in paths:
        st = Path(p).stat()
        out.append((str(p), st.st_size, st.st_mtime_ns))
    return out


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def image_files(folder: Path, skipped: list[Skip]) -> Iterator[Path]:
    """The files of ``folder`` in name order whose names are images'; every other file goes to ``skipped``."""
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        if path.name.lower().endswith(IMAGE_SUFFIXES):
            yield path
        else:
            skipped.append(Skip(str(path), "not an image file name (.jpg, .jpeg or .png)"))
