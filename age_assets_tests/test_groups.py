import math

import numpy as np
import pandas as pd
import pytest

from age_assets.datasets.utkface import groups_from_name, read_utkface
from age_assets.ml.groups import group_report, markdown_groups
from age_assets.ml.metrics import mae


@pytest.mark.parametrize("name, gender, race", [
    ("26_1_0_20170116171048641.jpg.chip.jpg", 1, 0),
    ("39_1_20170116174525125.jpg.chip.jpg", 1, None),   # no race field
    ("24_0_4_20170116220224657 .jpg.chip.jpg", 0, 4),
    ("30_0_7_2017.jpg.chip.jpg", 0, None),              # race code out of range
    ("30_12_2017.jpg.chip.jpg", None, None),            # no one-digit gender field
])
def test_gender_and_race_are_read_from_the_name(name: str, gender: int | None, race: int | None) -> None:
    got = groups_from_name(name)
    assert [None if math.isnan(v) else v for v in got] == [gender, race]


def test_utkface_manifest_carries_gender_and_race(utkface_dir) -> None:
    table, _ = read_utkface(utkface_dir)
    (utkface_dir / "39_1_20170116174525125.jpg.chip.jpg").write_bytes(
        next(utkface_dir.iterdir()).read_bytes())
    with_missing, _ = read_utkface(utkface_dir)
    assert set(table["gender"]) == {0.0, 1.0} and set(table["race"]) == {0.0, 1.0, 2.0, 3.0, 4.0}
    row = with_missing[with_missing["face_path"].str.endswith("39_1_20170116174525125.jpg.chip.jpg")]
    assert row["gender"].item() == 1 and math.isnan(row["race"].item())


def _labels() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    return pd.DataFrame({"real_age": rng.integers(0, 90, n).astype(float),
                         "gender": rng.integers(0, 2, n).astype(float),
                         "race": np.where(rng.random(n) < 0.05, np.nan, rng.integers(0, 5, n))})


def test_group_figures_match_the_faces_of_each_group() -> None:
    labels = _labels()
    pred = labels["real_age"].to_numpy() + np.where(labels["race"] == 1, 12.0, 2.0)
    report = group_report(pred, labels)
    assert report["overall"]["faces"] == len(labels)
    assert sum(s["faces"] for s in report["groups"]["age band"].values()) == len(labels)
    assert sum(s["faces"] for s in report["groups"]["race"].values()) == labels["race"].notna().sum()
    black = (labels["race"] == 1).to_numpy()
    assert report["groups"]["race"]["Black"]["mae"] == pytest.approx(mae(pred[black], labels["real_age"][black]))
    assert report["groups"]["race"]["Black"]["cs5"] == 0
    assert report["groups"]["gender"]["male"]["faces"] == (labels["gender"] == 0).sum()
    named = report["above_overall"]
    assert named[0] == "race: Black", "worst first"
    assert [g for g in named if not g.startswith("age band")] == ["race: Black"]
    assert "race: Black" in markdown_groups(report).splitlines()[-1]


def test_a_group_just_within_the_gap_is_not_named() -> None:
    labels = pd.DataFrame({"real_age": [30.0] * 4, "gender": [0.0, 0.0, 1.0, 1.0]})
    report = group_report(np.array([31.0, 31.0, 32.0, 32.0]), labels, gap=0.5)
    assert report["above_overall"] == []
    assert group_report(np.array([31.0, 31.0, 32.0, 32.0]), labels, gap=0.3)["above_overall"] == ["gender: female"]


def test_sources_without_gender_or_race_get_age_bands_only() -> None:
    appa_like = pd.DataFrame({"real_age": [5.0, 30.0, 70.0], "gender": [np.nan] * 3, "race": [np.nan] * 3})
    fgnet_like = appa_like.drop(columns=["gender", "race"])
    for labels in (appa_like, fgnet_like):
        report = group_report(np.array([6.0, 30.0, 60.0]), labels)
        assert list(report["groups"]) == ["age band"]
        assert list(report["groups"]["age band"]) == ["3-9", "28-45", "66+"]
