from pathlib import Path

import numpy as np
import pytest

from age_assets.datasets.appa_real import read_appa_real
from age_assets.datasets.manifest import Skip
from age_assets_tests.conftest import write_appa_real


def test_manifest_has_real_and_apparent_ages_per_split(tmp_path: Path) -> None:
    release = write_appa_real(tmp_path)
    table, skipped = read_appa_real(tmp_path)  # the folder above the release is found too
    assert not skipped
    assert table["split"].value_counts().to_dict() == {"train": 12, "valid": 6, "test": 6}
    assert table["face_path"].str.endswith(".jpg_face.jpg").all()
    assert (table["face_path"] == table["image_path"] + "_face.jpg").all()
    assert np.allclose(table["apparent_age_mean"] - table["real_age"], 1.5)
    assert table["num_ratings"].min() >= 30
    first = table[table["image_path"] == str(release / "train" / "000000.jpg")].iloc[0]
    assert first["real_age"] == 5 and first["split"] == "train"


def test_missing_column_names_the_csv(tmp_path: Path) -> None:
    release = write_appa_real(tmp_path)
    csv = release / "gt_avg_valid.csv"
    csv.write_text(csv.read_text().replace("real_age", "age"))
    with pytest.raises(ValueError, match=r"gt_avg_valid\.csv: missing column\(s\) real_age"):
        read_appa_real(release)


@pytest.mark.parametrize("bad", ["abc", "", "nan", "-3", "130"])
def test_bad_age_names_the_file_and_row(tmp_path: Path, bad: str) -> None:
    release = write_appa_real(tmp_path)
    csv = release / "gt_avg_test.csv"
    lines = csv.read_text().splitlines()
    fields = lines[3].split(",")
    fields[-1] = bad
    lines[3] = ",".join(fields)
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"gt_avg_test\.csv, row 4 \(file {fields[0]}\): real_age"):
        read_appa_real(release)


def test_row_without_image_is_skipped_and_listed(tmp_path: Path) -> None:
    release = write_appa_real(tmp_path)
    (release / "train" / "000003.jpg_face.jpg").unlink()
    table, skipped = read_appa_real(release)
    assert len(table) == 23
    assert [Path(s.path).name for s in skipped] == ["000003.jpg"]


def test_not_a_release_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not an APPA-REAL release"):
        read_appa_real(tmp_path)


def test_duplicate_file_name_names_the_row(tmp_path: Path) -> None:
    release = write_appa_real(tmp_path)
    csv = release / "gt_avg_valid.csv"
    lines = csv.read_text().splitlines()
    csv.write_text("\n".join([*lines, lines[2]]) + "\n")
    twice = rf"gt_avg_valid\.csv, row {len(lines) + 1}: file {lines[2].split(',')[0]} is listed twice"
    with pytest.raises(ValueError, match=twice):
        read_appa_real(release)


def test_image_without_a_row_is_skipped_and_listed(tmp_path: Path) -> None:
    release = write_appa_real(tmp_path)
    stray = release / "test" / "999999.jpg"
    stray.write_bytes((release / "test" / "000018.jpg").read_bytes())
    table, skipped = read_appa_real(release)
    assert len(table) == 24 and str(stray) not in set(table["image_path"])
    assert skipped == [Skip(str(stray), "no row in gt_avg_test.csv, so no label")]


def test_csv_without_rows_is_an_empty_split_error(tmp_path: Path) -> None:
    release = write_appa_real(tmp_path)
    csv = release / "gt_avg_train.csv"
    csv.write_text(csv.read_text().splitlines()[0] + "\n")
    with pytest.raises(ValueError, match=r"gt_avg_train\.csv: no rows"):
        read_appa_real(release)
