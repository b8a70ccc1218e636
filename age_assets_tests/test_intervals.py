"""Age intervals: calibrated coverage on held-out data in every true-age band, widths that follow the
error, the same interval from every runtime, and clear errors for a damaged table."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from age_assets.cli import main
from age_assets.ml.buckets import BUCKET_LABELS
from age_assets.ml.intervals import NEIGHBOURS, TRUE_AGES, IntervalTable, interval_scores, intervals_markdown
from age_assets.ml.models import MAX_OUTPUT_AGE
from age_assets.serving.runtime import DESCRIPTION, ExportedModel, ModelLoadError
from age_assets_tests.conftest import noisy_ages, synthetic_face, synthetic_interval_table


def _held_out_coverage(pull: float, calibrations: int = 5) -> dict[str, dict[str, float]]:
    """Per coverage, overall (``"all"``) and per true-age band, the coverage on 20000 held-out faces,
    averaged over tables calibrated on several draws of 2000 validation faces (one draw is as noisy
    as 60 faces per true age make it)."""
    predicted, truth = noisy_ages(20000, seed=100, pull=pull)
    runs = [interval_scores(truth, IntervalTable.calibrate(*noisy_ages(2000, seed, pull))(predicted))
            for seed in range(calibrations)]
    return {key: {"all": float(np.mean([r[key]["coverage"] for r in runs])),
                  **{band: float(np.mean([r[key]["per_band"][band]["coverage"] for r in runs]))
                     for band in BUCKET_LABELS}} for key in ("80", "90")}


def test_held_out_coverage_is_near_nominal_in_every_true_age_band_and_widths_follow_the_error() -> None:
    for key, coverage in _held_out_coverage(pull=0.0).items():
        nominal = int(key) / 100
        assert abs(coverage.pop("all") - nominal) < 0.015, coverage
        # at the floor of 0 years the neighbours of a baby are all older: babies are covered more often, not less
        assert coverage.pop("0-2") > nominal - 0.05, coverage
        assert all(abs(c - nominal) < 0.05 for c in coverage.values()), (key, coverage)
    predicted, truth = noisy_ages(20000, seed=2)
    intervals = synthetic_interval_table(n=2000, seed=1)(predicted)
    scores = interval_scores(truth, intervals)
    per_band = scores["90"]["per_band"]
    assert per_band["0-2"]["mean_width"] < per_band["28-45"]["mean_width"] < per_band["66+"]["mean_width"]
    (low80, high80), (low90, high90) = intervals["80"], intervals["90"]
    assert np.all(low90 >= 0) and np.all(low90 <= low80) and np.all(low80 <= high80) and np.all(high80 <= high90)
    assert scores["90"]["mean_width"] > scores["80"]["mean_width"]


def test_faces_pulled_towards_the_mean_are_covered_in_every_true_age_band() -> None:
    """A model that predicts teens too old and the old too young: the interval reaches towards the ends."""
    for key, coverage in _held_out_coverage(pull=0.3).items():
        nominal = int(key) / 100
        assert abs(coverage.pop("all") - nominal) < 0.015, coverage
        # at the floor of 0 years the neighbours of a baby are all older: babies are covered more often, not less
        assert coverage.pop("0-2") > nominal - 0.05, coverage
        assert all(abs(c - nominal) < 0.05 for c in coverage.values()), (key, coverage)
    table = IntervalTable.calibrate(*noisy_ages(2000, seed=1, pull=0.3))
    (young_low, old_low), (young_high, old_high) = table(np.array([15.0, 60.0]))["80"]
    assert 15 - young_low > 1.5 * (young_high - 15)  # a face predicted 15 is most likely younger
    assert old_high - 60 > 1.5 * (60 - old_low)  # one predicted 60 most likely older


def test_with_fewer_faces_than_neighbours_every_true_age_takes_all_faces() -> None:
    predicted, truth = noisy_ages(NEIGHBOURS - 10, seed=3)
    lowest, highest = IntervalTable.calibrate(predicted, truth).belts["80"]
    errors = np.sort(predicted - truth)
    assert np.allclose(np.asarray(lowest) - TRUE_AGES, errors[len(errors) - 46])  # rank ceil(51 * 0.9) = 46
    assert np.allclose(np.asarray(highest) - TRUE_AGES, errors[45])


def test_the_belt_is_calibrated_at_every_age_the_model_outputs() -> None:
    assert TRUE_AGES[0] == 0 and TRUE_AGES[-1] == MAX_OUTPUT_AGE and np.all(np.diff(TRUE_AGES) == 1)


@pytest.mark.parametrize(("faces", "coverages"), [(8, set()), (9, {"80"}), (18, {"80"}), (19, {"80", "90"})])
def test_a_coverage_too_few_faces_support_is_left_out(faces: int, coverages: set[str]) -> None:
    """Split conformal needs (n + 1)(1 + coverage) / 2 <= n: fewer faces would give an endless interval."""
    rng = np.random.default_rng(0)
    truth = rng.uniform(20, 40, faces)
    table = IntervalTable.calibrate(truth + rng.normal(0, 3, faces), truth)
    assert set(table.coverages) == coverages
    assert all(np.isfinite(curve).all() for belt in table.belts.values() for curve in belt)


def test_calibration_needs_matching_inputs() -> None:
    with pytest.raises(ValueError, match="as many predictions as true ages"):
        IntervalTable.calibrate(np.zeros(3), np.zeros(4))


def test_the_table_survives_json() -> None:
    table = synthetic_interval_table(n=500)
    again = IntervalTable.from_json(json.loads(json.dumps(table.to_json())))
    predicted, _ = noisy_ages(50, seed=4)
    for key, (low, high) in table(predicted).items():
        np.testing.assert_array_equal(again(predicted)[key][0], low)
        np.testing.assert_array_equal(again(predicted)[key][1], high)


def test_litert_and_onnx_give_the_same_interval(tiny_export: Path) -> None:
    crops = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    intervals = {}
    for file in ("age_estimator.tflite", "age_estimator.onnx"):
        model = ExportedModel(tiny_export / file)
        ages, _ = model.predict(crops)
        intervals[file] = model.intervals(ages)
        assert set(intervals[file]) == {"80", "90"}
        assert np.all(intervals[file]["90"][0] <= intervals[file]["80"][0])
        assert np.all(intervals[file]["80"][1] <= intervals[file]["90"][1])
    for key, (low, high) in intervals["age_estimator.tflite"].items():
        np.testing.assert_allclose(intervals["age_estimator.onnx"][key][0], low, atol=0.05)
        np.testing.assert_allclose(intervals["age_estimator.onnx"][key][1], high, atol=0.05)


def _belt_table(**changes: object) -> dict:
    return synthetic_interval_table().to_json() | changes


@pytest.mark.parametrize("table", [
    _belt_table(true_ages=[0, 1]),
    _belt_table(belts={"80": {"lowest_prediction": [0.0] * 101, "highest_prediction": [1.0] * 100}}),
    _belt_table(belts={"90": {"lowest_prediction": [-np.inf] * 101, "highest_prediction": [np.inf] * 101}}),
    _belt_table(belts={"80": {"lowest_prediction": list(range(101, 0, -1)), "highest_prediction": [200.0] * 101}}),
    _belt_table(faces="many"),
    {"method": "split conformal per predicted-age band", "bounds": {"80": [[-1, 1]] * 7}},  # an older export's
    {"bounds": "none"}, [1, 2]])
def test_a_damaged_interval_table_names_the_file(tiny_export: Path, tmp_path: Path, table: object) -> None:
    copy = tmp_path / "export"
    shutil.copytree(tiny_export, copy, ignore=shutil.ignore_patterns("saved_model"))
    description = json.loads((copy / DESCRIPTION).read_text())
    (copy / DESCRIPTION).write_text(json.dumps(description | {"intervals": table}))
    with pytest.raises(ModelLoadError, match=f"{copy / DESCRIPTION}.*interval table"):
        ExportedModel(copy / "age_estimator.tflite")


def test_an_export_without_a_table_gives_no_intervals(tiny_export: Path, tmp_path: Path) -> None:
    copy = tmp_path / "export"
    shutil.copytree(tiny_export, copy, ignore=shutil.ignore_patterns("saved_model"))
    description = json.loads((copy / DESCRIPTION).read_text())
    del description["intervals"]
    (copy / DESCRIPTION).write_text(json.dumps(description))
    model = ExportedModel(copy / "age_estimator.tflite")
    assert model.intervals(model.predict(np.zeros((1, 32, 32, 3), np.uint8))[0]) == {}


def test_scores_per_true_age_band() -> None:
    truth = np.array([1.0, 1.0, 30.0, 30.0, 70.0])
    low, high = np.array([0.0, 2.0, 25.0, 20.0, 60.0]), np.array([2.0, 4.0, 35.0, 28.0, 80.0])
    scores = interval_scores(truth, {"80": (low, high)})["80"]
    assert scores["coverage"] == pytest.approx(3 / 5) and scores["mean_width"] == pytest.approx(42 / 5)
    assert scores["per_band"] == {"0-2": {"coverage": 0.5, "mean_width": 2.0, "faces": 2},
                                  "28-45": {"coverage": 0.5, "mean_width": 9.0, "faces": 2},
                                  "66+": {"coverage": 1.0, "mean_width": 20.0, "faces": 1}}


def test_predict_writes_each_interval_beside_the_age(tiny_export: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    for age in (5, 30, 70):
        synthetic_face(age, size=32, seed=age).save(tmp_path / f"{age}.png")
    model = tiny_export / "age_estimator.tflite"
    assert main(["predict", str(tmp_path), "--crops", "--model", str(model)]) == 0
    out = pd.read_csv(io.StringIO(capsys.readouterr().out))
    columns = list(out.columns)
    assert columns[columns.index("age"):columns.index("bucket")] == [
        "age", "age_low_80", "age_high_80", "age_low_90", "age_high_90"]
    assert (out["age_low_90"] <= out["age_low_80"]).all() and (out["age_low_80"] <= out["age_high_80"]).all()
    assert (out["age_high_80"] <= out["age_high_90"]).all()
    estimator = ExportedModel(model)
    crops = np.stack([np.asarray(Image.open(tmp_path / f"{age}.png").convert("RGB")) for age in (5, 30, 70)])
    low, high = estimator.intervals(estimator.predict(crops)[0])["90"]
    order = np.argsort([int(Path(p).stem) for p in out["path"]])
    np.testing.assert_allclose(out["age_low_90"].to_numpy()[order], low, atol=0.051)
    np.testing.assert_allclose(out["age_high_90"].to_numpy()[order], high, atol=0.051)


def test_the_report_table_lists_every_band() -> None:
    predicted, truth = noisy_ages(500, seed=5)
    scores = interval_scores(truth, synthetic_interval_table()(predicted))
    table = intervals_markdown(scores)
    assert "| 90% | all | 500 |" in table and f"{scores['90']['coverage']:.3f}" in table
    assert sum(f"| 80% | {band} |" in table for band in BUCKET_LABELS) == len(scores["80"]["per_band"])
