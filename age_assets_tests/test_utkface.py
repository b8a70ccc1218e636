from pathlib import Path

import pytest

from age_assets.datasets.utkface import SPLIT_RATIOS, age_from_name, read_utkface, split_of
from age_assets_tests.conftest import synthetic_face, write_utkface


@pytest.mark.parametrize("name, age", [
    ("26_1_0_20170116171048641.jpg.chip.jpg", 26),
    ("39_1_20170116174525125.jpg.chip.jpg", 39),      # no race field
    ("24_0_1_20170116220224657 .jpg.chip.jpg", 24),   # space before .jpg
    ("55_0_0_20170116232725357jpg.chip.jpg", 55),     # missing dot
    ("116_1_0_2017.jpg.chip.jpg", 116),
    ("121_1_0_2017.jpg.chip.jpg", None),              # beyond the age range
    ("x_1_0_2017.jpg.chip.jpg", None),
    ("26.jpg", None),
])
def test_age_is_read_from_the_leading_field(name: str, age: int | None) -> None:
    assert age_from_name(name) == age


def test_split_shares_follow_the_documented_ratios() -> None:
    names = [f"{i % 90}_0_0_{i:017d}.jpg.chip.jpg" for i in range(20000)]
    splits = [split_of(n) for n in names]
    for split, ratio in zip(("train", "valid", "test"), SPLIT_RATIOS):
        assert abs(splits.count(split) / len(names) - ratio) < 0.015


def test_an_image_keeps_its_split_when_files_are_added(tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    write_utkface(folder, n=60)
    before, _ = read_utkface(folder)
    write_utkface(folder, n=40, start=60)
    after, _ = read_utkface(folder)
    assert len(after) == 100
    merged = before.merge(after, on="image_path", suffixes=("_before", "_after"))
    assert len(merged) == 60
    assert (merged["split_before"] == merged["split_after"]).all()


def test_unlabelled_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    write_utkface(folder, n=10)
    synthetic_face(30).save(folder / "portrait.jpg")
    (folder / "notes.txt").write_text("not an image")
    table, skipped = read_utkface(folder)
    assert len(table) == 10
    reasons = {Path(s.path).name: s.reason for s in skipped}
    assert set(reasons) == {"portrait.jpg", "notes.txt"}
    assert "age" in reasons["portrait.jpg"] and "image" in reasons["notes.txt"]


def test_a_folder_without_faces_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing-folder"):
        read_utkface(tmp_path / "missing-folder")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="empty"):
        read_utkface(tmp_path / "empty")
