"""APPA-REAL: ``gt_avg_{train,valid,test}.csv`` beside ``train/``, ``valid/``, ``test/`` folders.

Each CSV row names an image ``NNNNNN.jpg``; the release also holds its face crop
``NNNNNN.jpg_face.jpg`` next to it. Rows give the real age and the mean, standard deviation and
count of the apparent-age votes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from age_assets.datasets.manifest import MAX_LABEL_AGE, SPLITS, Skip, finish_manifest

OFFICIAL_URL = "http://158.109.8.102/AppaRealAge/appa-real-release.zip"
OFFICIAL_CHECKSUM = "md5:2701c6ec291b242e6b4f8a0a56087a43"
"""The checksum published for the official archive (its maintainers give no sha256)."""

CSV_COLUMNS = ("file_name", "num_ratings", "apparent_age_avg", "apparent_age_std", "real_age")
FACE_SUFFIX = "_face.jpg"


def find_release_root(folder: Path) -> Path:
    """The folder holding ``gt_avg_train.csv``: ``folder`` itself or one level below it."""
    folder = Path(folder)
    for candidate in [folder, *sorted(p for p in folder.iterdir() if p.is_dir())]:
        if (candidate / "gt_avg_train.csv").is_file():
            return candidate
    raise FileNotFoundError(
        f"{folder} is not an APPA-REAL release: no gt_avg_train.csv in it or in a folder below it"
    )


def _read_split_csv(csv: Path) -> pd.DataFrame:
    if not csv.is_file():
        raise FileNotFoundError(f"APPA-REAL labels {csv} are missing")
    table = pd.read_csv(csv, dtype={"file_name": str})
    missing = [c for c in CSV_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{csv}: missing column(s) {', '.join(missing)}; expected {', '.join(CSV_COLUMNS)}")
    if table.empty:
        raise ValueError(f"{csv}: no rows, so its split would be empty")
    for column in CSV_COLUMNS[1:]:
        values = pd.to_numeric(table[column], errors="coerce")
        bad = values.isna() | (values < 0)
        if column in ("apparent_age_avg", "real_age"):
            bad |= values > MAX_LABEL_AGE
        if bad.any():
            row = int(bad.idxmax())
            raise ValueError(
                f"{csv}, row {row + 2} (file {table.at[row, 'file_name']}): "
                f"{column}={table.at[row, column]!r} is not a number in 0-{MAX_LABEL_AGE}"
            )
        table[column] = values.astype("float64")
    duplicated = table["file_name"].duplicated()
    if duplicated.any():
        row = int(duplicated.idxmax())
        raise ValueError(f"{csv}, row {row + 2}: file {table.at[row, 'file_name']} is listed twice")
    return table


def read_appa_real(folder: Path, split: str | None = None) -> tuple[pd.DataFrame, list[Skip]]:
    """Manifest of an extracted APPA-REAL release; ``split`` puts every image in one split instead.

    A row whose image or face crop is missing is skipped and listed, not fatal: the release is
    large and a partial copy should still be usable, with the gap reported. So is an image in a
    split folder that its CSV does not list: without a label it cannot be used.
    """
    root = find_release_root(folder)
    frames, skipped = [], []
    for name in SPLITS:
        table = _read_split_csv(root / f"gt_avg_{name}.csv")
        image = table["file_name"].map(lambda f, d=root / name: str(d / f))
        face = image + FACE_SUFFIX
        present = image.map(lambda p: Path(p).is_file()) & face.map(lambda p: Path(p).is_file())
        skipped += [Skip(p, "listed in the CSV but the image or its face crop is missing")
                    for p in image[~present]]
        listed = set(table["file_name"])
        skipped += [Skip(str(p), f"no row in gt_avg_{name}.csv, so no label")
                    for p in sorted((root / name).glob("*.jpg"))
                    if not p.name.endswith(FACE_SUFFIX) and p.name not in listed]
        frames.append(pd.DataFrame({
            "split": split or name,
            "image_path": image[present],
            "face_path": face[present],
            "real_age": table["real_age"][present],
            "apparent_age_mean": table["apparent_age_avg"][present],
            "apparent_age_std": table["apparent_age_std"][present],
            "num_ratings": table["num_ratings"][present],
        }))
    return finish_manifest(pd.concat(frames, ignore_index=True)), skipped
