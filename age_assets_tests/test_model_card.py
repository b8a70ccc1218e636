import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from age_assets.artifacts import Export, ImageSet, Report
from age_assets.assets.model_card import ModelCardConfig, model_card
from age_assets.datasets.manifest import GENDERS
from age_assets.ml.groups import group_report
from age_assets.ml.metrics import mae
from age_assets.ml.model_card import CARD, model_card as card_text

EXPORT = {"image_size": 32, "input": "faces: uint8 [N, H, W, 3] RGB face crops",
          "outputs": {"age": "[N] years", "buckets": "[N, 7] probabilities"},
          "bucket_labels": ["0-2", "3-9", "10-20", "21-27", "28-45", "46-65", "66+"],
          "files": {"saved_model": "saved_model", "litert": "age_estimator.tflite", "onnx": "age_estimator.onnx"},
          "members": [{"name": "model_a", "backbone": "mobilenet_v3_small", "weight": 0.7},
                      {"name": "classifier_a", "backbone": "mobilenet_v3_small", "weight": 0.3}],
          "classifiers": ["classifier_a"], "bucket_stacker": "bucket_ensemble"}
INTERVALS = {"80": {"coverage": 0.812, "mean_width": 9.4,
                    "per_band": {"3-9": {"coverage": 0.75, "mean_width": 4.2, "faces": 40}}},
             "90": {"coverage": 0.903, "mean_width": 13.1,
                    "per_band": {"3-9": {"coverage": 0.85, "mean_width": 6.3, "faces": 40}}}}


def _labels(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"image_path": [f"/faces/{i}.jpg" for i in range(n)],
                         "real_age": rng.integers(1, 90, n).astype(float),
                         "gender": (rng.random(n) < 0.985).astype(float),  # few male faces
                         "race": rng.integers(0, 5, n).astype(float)})


def _report(labels: pd.DataFrame) -> dict:
    pred = labels["real_age"].to_numpy() + np.where(labels["real_age"] > 65, 15.0, 3.0)
    return {"dataset": {"test_images": len(labels), "target": "real_age", "has_apparent_age": False},
            "ages": {"ensemble": {"mae": mae(pred, labels["real_age"]), "cs5": 0.5, "bucket_accuracy": 0.6}},
            "groups": group_report(pred, labels)}


@pytest.fixture
def splits() -> dict[str, pd.DataFrame]:
    return {"train": _labels(300, 0), "valid": _labels(50, 1), "test": _labels(80, 2)}


def test_card_states_the_run_numbers(splits) -> None:
    report = _report(splits["test"])
    card = card_text(report, EXPORT, splits)
    ensemble, groups = report["ages"]["ensemble"], report["groups"]["groups"]
    assert f"MAE {ensemble['mae']:.2f} years" in card and card.count("Overall: MAE") == 1
    assert f"| 66+ | {groups['age band']['66+']['faces']} | {groups['age band']['66+']['mae']:.2f} |" in card
    assert "age band: 66+" in card.split("## Limits")[1], "the worse-served band is named among the limits"
    male = int((splits["train"]["gender"] == GENDERS.index("male")).sum())
    assert f"gender: male ({male} training faces)" in card
    elderly = (splits["train"]["real_age"] >= 66).mean()
    assert f"{elderly:.1%} of the training faces are 66+" in card
    assert "| train | 300 |" in card and "| test | 80 |" in card
    assert "`age_estimator.onnx`" in card and "model_a | mobilenet_v3_small | 0.700" in card
    assert "real (documented) age" in card
    other = card_text(_report(splits["valid"]), EXPORT, splits)
    assert other != card, "another report gives another card"


def test_card_shows_intervals_only_where_calibrated(splits) -> None:
    report = _report(splits["test"])
    assert "No interval calibrated" in card_text(report, EXPORT, splits)
    card = card_text({**report, "intervals": INTERVALS}, EXPORT, splits)
    assert "No interval calibrated" not in card
    assert "| 80% | 0.812 | 9.4 |" in card and "| 90% | 0.903 | 13.1 |" in card
    assert "| 3-9 | 40 | 0.750 | 4.2 | 0.850 | 6.3 |" in card


def test_card_says_when_groups_are_not_measured(splits) -> None:
    no_groups = {s: t.drop(columns=["gender", "race"]) for s, t in splits.items()}
    card = card_text(_report(no_groups["test"]), EXPORT, no_groups)
    assert "names no gender or race" in card and "| race |" not in card


def test_model_card_asset_writes_the_card_beside_the_export(tmp_path: Path, splits) -> None:
    export, report, images = (tmp_path / name for name in ("export", "report", "images"))
    for folder in (export, report, images):
        folder.mkdir()
    (export / "export.json").write_text(json.dumps(EXPORT))
    (report / "evaluation.json").write_text(json.dumps(_report(splits["test"])))
    for split, table in splits.items():
        np.save(images / f"{split}_images.npy", np.zeros((len(table), 2, 2, 3), np.uint8))
        table.to_csv(images / f"{split}_labels.csv", index=False)
    result = model_card(config=ModelCardConfig(), exported_model=Export(export, "e1"),
                        evaluation_report=Report(report, "r1"), image_arrays=ImageSet(images, "i1"))
    text = (export / CARD).read_text()
    assert text == card_text(json.loads((report / "evaluation.json").read_text()), EXPORT, splits)
    assert isinstance(result, dg.MaterializeResult) and result.metadata is not None
    assert result.metadata["card"] == dg.MetadataValue.md(text)
    assert result.metadata["path"] == dg.MetadataValue.path(str(export / CARD))
    again = model_card(config=ModelCardConfig(), exported_model=Export(export, "e1"),
                       evaluation_report=Report(report, "r2"), image_arrays=ImageSet(images, "i1"))
    assert again.data_version != result.data_version, "a new report is a new card"
