"""Age intervals: calibrated coverage on held-out data, widths that follow the difficulty, the same
interval from every runtime, and clear errors for a damaged table."""

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
from age_assets.ml.intervals import IntervalTable, difficulty, interval_scores, intervals_markdown
from age_assets.serving.runtime import DESCRIPTION, ExportedModel, ModelLoadError
from age_assets_tests.conftest import noisy_ages, synthetic_face, synthetic_interval_table


def test_held_out_coverage_is_near_nominal_and_widths_follow_the_difficulty() -> None:
    table = synthetic_interval_table(n=4000, seed=1)
    predicted, truth, buckets = noisy_ages(20000, seed=2)
    scores = interval_scores(truth, table(predicted, buckets))
    for key, nominal in (("80", 0.8), ("90", 0.9)):
        assert abs(scores[key]["coverage"] - nominal) < 0.015, scores[key]
        for band in ("10-20", "28-45", "66+"):
            assert abs(scores[key]["per_band"][band]["coverage"] - nominal) < 0.05, (band, scores[key])
    per_band = scores["90"]["per_band"]
    assert per_band["0-2"]["mean_width"] < per_band["28-45"]["mean_width"] < per_band["66+"]["mean_width"]
    low, high = table(predicted, buckets)["90"]
    unsure = difficulty(buckets) > np.median(difficulty(buckets))
    assert np.mean((high - low)[unsure]) > 1.3 * np.mean((high - low)[~unsure])
    assert np.all(low >= 0) and np.all(low <= predicted) and np.all(predicted <= high)
    assert scores["90"]["mean_width"] > scores["80"]["mean_width"]


def test_a_small_band_takes_the_pooled_quantiles() -> None:
    predicted, truth, buckets = noisy_ages(3000, seed=3)
    keep = (predicted > 3) | (np.arange(len(predicted)) < 10)  # a handful of faces predicted 0-2
    table = IntervalTable.calibrate(predicted[keep], truth[keep], buckets[keep])
    assert table.band_faces[0] < 50
    scores = (truth[keep] - predicted[keep]) / difficulty(buckets[keep])
    assert table.bounds["80"][0] == pytest.approx(list(np.quantile(scores, [0.1, 0.9])), abs=0.06)
    assert table.bounds["80"][0] != table.bounds["80"][4]


@pytest.mark.parametrize(("faces", "coverages"), [(8, set()), (9, {"80"}), (18, {"80"}), (19, {"80", "90"})])
def test_a_coverage_too_few_faces_support_is_left_out(faces: int, coverages: set[str]) -> None:
    """Split conformal needs (n + 1)(1 + coverage) / 2 <= n: fewer faces would give an endless interval."""
    rng = np.random.default_rng(0)
    predicted = rng.uniform(20, 40, faces)
    table = IntervalTable.calibrate(predicted, predicted + rng.normal(0, 3, faces), np.full((faces, 7), 1 / 7))
    assert set(table.bounds) == coverages
    assert all(np.isfinite(row).all() for rows in table.bounds.values() for row in rows)


def test_calibration_needs_matching_inputs() -> None:
    with pytest.raises(ValueError, match="as many predictions as true ages"):
        IntervalTable.calibrate(np.zeros(3), np.zeros(4), np.full((3, 7), 1 / 7))


def test_the_table_survives_json() -> None:
    table = synthetic_interval_table(n=500)
    again = IntervalTable.from_json(json.loads(json.dumps(table.to_json())))
    predicted, _, buckets = noisy_ages(50, seed=4)
    for key, (low, high) in table(predicted, buckets).items():
        np.testing.assert_array_equal(again(predicted, buckets)[key][0], low)
        np.testing.assert_array_equal(again(predicted, buckets)[key][1], high)


def test_litert_and_onnx_give_the_same_interval(tiny_export: Path) -> None:
    crops = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    intervals = {}
    for file in ("age_estimator.tflite", "age_estimator.onnx"):
        model = ExportedModel(tiny_export / file)
        ages, buckets = model.predict(crops)
        intervals[file] = model.intervals(ages, buckets)
        assert set(intervals[file]) == {"80", "90"}
        assert np.all(intervals[file]["90"][0] <= ages) and np.all(ages <= intervals[file]["90"][1])
    for key, (low, high) in intervals["age_estimator.tflite"].items():
        np.testing.assert_allclose(intervals["age_estimator.onnx"][key][0], low, atol=0.05)
        np.testing.assert_allclose(intervals["age_estimator.onnx"][key][1], high, atol=0.05)


@pytest.mark.parametrize("table", [{"bounds": {"80": [[-1, 1]]}, "band_faces": [1], "bands": list(BUCKET_LABELS)},
                                   {"bounds": {"90": [[-np.inf, np.inf]] * 7}, "band_faces": [1] * 7,
                                    "bands": list(BUCKET_LABELS)},
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
    assert model.intervals(*model.predict(np.zeros((1, 32, 32, 3), np.uint8))) == {}


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
    assert (out["age_low_90"] <= out["age_low_80"]).all() and (out["age_low_80"] <= out["age"]).all()
    assert (out["age"] <= out["age_high_80"]).all() and (out["age_high_80"] <= out["age_high_90"]).all()
    estimator = ExportedModel(model)
    crops = np.stack([np.asarray(Image.open(tmp_path / f"{age}.png").convert("RGB")) for age in (5, 30, 70)])
    low, high = estimator.intervals(*estimator.predict(crops))["90"]
    order = np.argsort([int(Path(p).stem) for p in out["path"]])
    np.testing.assert_allclose(out["age_low_90"].to_numpy()[order], low, atol=0.051)
    np.testing.assert_allclose(out["age_high_90"].to_numpy()[order], high, atol=0.051)


def test_the_report_table_lists_every_band() -> None:
    predicted, truth, buckets = noisy_ages(500, seed=5)
    scores = interval_scores(truth, synthetic_interval_table()(predicted, buckets))
    table = intervals_markdown(scores)
    assert "| 90% | all | 500 |" in table and f"{scores['90']['coverage']:.3f}" in table
    assert sum(f"| 80% | {band} |" in table for band in BUCKET_LABELS) == len(scores["80"]["per_band"])
