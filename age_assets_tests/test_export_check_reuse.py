"""exports_agree_with_keras computes its verdict once per export and validation set."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from age_assets.artifacts import PROBABILITY_COLUMNS, Export, ImageSet
from age_assets.assets import export as export_assets
from age_assets.serving.runtime import ExportedModel


@pytest.fixture
def export_and_images(tiny_export: Path, tmp_path: Path) -> tuple[Export, ImageSet]:
    """A copy of the tiny export whose reference outputs are its LiteRT outputs on 4 validation crops."""
    folder = tmp_path / "exported_model" / "fp1"
    shutil.copytree(tiny_export, folder)
    images = tmp_path / "image_arrays"
    images.mkdir()
    crops = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    np.save(images / "valid_images.npy", crops)
    ages, buckets = ExportedModel(folder / "age_estimator.tflite").predict(crops)
    reference = pd.DataFrame(buckets, columns=PROBABILITY_COLUMNS)
    reference.insert(0, "age", ages)
    reference.to_csv(folder / "valid_predictions.csv", index=False)
    return Export(folder, "fp1"), ImageSet(images, "images1")


@pytest.mark.slow  # builds the tiny export and loads TensorFlow
def test_an_unchanged_export_reuses_its_verdict_and_a_changed_one_recomputes(
        export_and_images: tuple[Export, ImageSet], monkeypatch: pytest.MonkeyPatch) -> None:
    export, images = export_and_images
    computed: list[Path] = []
    agreement = export_assets._agreement

    def counted(image_arrays: ImageSet, exported_model: Export) -> tuple[bool, dict[str, float]]:
        computed.append(exported_model.folder)
        return agreement(image_arrays, exported_model)

    monkeypatch.setattr(export_assets, "_agreement", counted)
    first = export_assets.exports_agree_with_keras(images, export)
    assert first.passed and first.metadata["reused"].value is False
    again = export_assets.exports_agree_with_keras(images, export)
    assert again.passed and again.metadata["reused"].value is True
    assert again.metadata["litert_max_age_difference"] == first.metadata["litert_max_age_difference"]
    assert computed == [export.folder], "the unchanged rerun did not run the exports again"

    changed = Export(export.folder.parent / "fp2", "fp2")
    shutil.copytree(export.folder, changed.folder)
    (changed.folder / export_assets.AGREEMENT_VERDICT).unlink()
    reference = changed.reference()
    reference["age"] += 1.0  # this export no longer matches its Keras model
    reference.to_csv(changed.folder / "valid_predictions.csv", index=False)
    refused = export_assets.exports_agree_with_keras(images, changed)
    assert not refused.passed and refused.metadata["reused"].value is False
    assert computed == [export.folder, changed.folder]

    other_images = ImageSet(images.folder, "images2")
    assert export_assets.exports_agree_with_keras(other_images, export).metadata["reused"].value is False
    assert len(computed) == 3
