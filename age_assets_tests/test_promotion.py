"""promoted_model: a worse export is refused, a better one promoted, always on the same reference faces."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from age_assets.cli import model_file
from age_assets.definitions import build_defs
from age_assets.promotion import PROMOTED, reference_set
from age_assets.storage import Pointer, atomic_write_text
from age_assets_tests.conftest import synthetic_face

SIZE = 32


def faces(n: int, start: int) -> tuple[np.ndarray, pd.DataFrame]:
    ages = np.array([1 + (i * 7) % 90 for i in range(start, start + n)])
    images = np.stack([np.asarray(synthetic_face(a, size=SIZE, seed=i)) for i, a in zip(range(start, start + n), ages)])
    return images, pd.DataFrame({"real_age": ages})


def fitted_export(folder: Path, images: np.ndarray, ages: np.ndarray) -> None:
    """An export of a linear regressor on the mean colour, fitted by least squares to ``ages``, beside
    an untrained bucket classifier."""
    import keras

    from age_assets.ml.export import Member, export_all, inference_model

    pooled = images.reshape(len(images), -1, 3).mean(axis=1) / 255
    coef, *_ = np.linalg.lstsq(np.c_[pooled, np.ones(len(pooled))], ages.astype(float), rcond=None)

    def head(units: int, activation: str | None) -> keras.Model:
        inputs = keras.Input((SIZE, SIZE, 3))
        return keras.Model(inputs, keras.layers.Dense(units, activation=activation)(
            keras.layers.GlobalAveragePooling2D()(inputs)))

    regressor, classifier = head(1, None), head(7, "softmax")
    regressor.layers[-1].set_weights([coef[:3, None].astype("float32"), coef[3:].astype("float32")])
    members = [Member(model=regressor, scale=1 / 255, offset=0, mirror_average=False, age_weight=1.0),
               Member(model=classifier, scale=1 / 255, offset=0, mirror_average=False, buckets=True)]
    folder.mkdir(parents=True)
    export_all(inference_model(SIZE, members), folder, SIZE, target="real_age")


def write_image_arrays(root: Path, fingerprint: str, images: np.ndarray, labels: pd.DataFrame) -> None:
    folder = root / "artifacts" / "image_arrays" / fingerprint
    folder.mkdir(parents=True)
    np.save(folder / "test_images.npy", images)
    labels.to_csv(folder / "test_labels.csv", index=False)
    atomic_write_text(Pointer.path(root, "image_arrays"), Pointer("ImageSet", folder, fingerprint).text(root))


def new_export(root: Path, fingerprint: str, train: np.ndarray, ages: np.ndarray) -> None:
    folder = root / "artifacts" / "exported_model" / fingerprint
    fitted_export(folder, train, ages)
    atomic_write_text(Pointer.path(root, "exported_model"), Pointer("Export", folder, fingerprint).text(root))


def promote(root: Path) -> dg.ExecuteInProcessResult:
    defs = build_defs({"AGE_ASSETS_DATA_DIR": str(root), "AGE_ASSETS_BACKBONES": "mobilenet_v3_small"})
    gate = dg.AssetCheckKey(dg.AssetKey("exported_model"), "not_worse_than_promoted")
    return dg.materialize([*defs.assets, *defs.asset_checks], resources=defs.resources, raise_on_error=False,
                          selection=dg.AssetSelection.assets("promoted_model") | dg.AssetSelection.checks(gate))


def gate_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    return next(e for e in result.get_asset_check_evaluations() if e.check_name == "not_worse_than_promoted")


def promoted(root: Path) -> str | None:
    pointer = Pointer.read(root, PROMOTED)
    return pointer.fingerprint if pointer else None


@pytest.mark.slow  # three real exports
def test_a_worse_export_is_refused_and_a_better_one_promoted_on_the_first_test_split(tmp_path: Path) -> None:
    root = tmp_path / "data"
    train, train_labels = faces(60, 0)
    ages = train_labels["real_age"].to_numpy()
    rng = np.random.default_rng(0)
    half_corrupted = np.where(np.arange(len(ages)) % 2 == 0, rng.permutation(ages), ages)
    write_image_arrays(root, "split1", *faces(30, 100))

    new_export(root, "first", train, half_corrupted)
    first = promote(root)
    assert first.success and promoted(root) == "first"
    meta = first.asset_materializations_for_node("promoted_model")[0].metadata
    assert meta["decision"].value == "promoted" and meta["promoted_reference_mae"].value == -1.0
    first_mae = meta["challenger_reference_mae"].value
    reference = reference_set(root)
    assert reference is not None and len(reference.labels()) == 30

    new_export(root, "worse", train, rng.permutation(ages))  # every label corrupted
    worse = promote(root)
    check = gate_result(worse)
    assert not check.passed and not worse.success
    assert check.metadata["decision"].value == "refused"
    assert check.metadata["promoted_reference_mae"].value == first_mae
    assert check.metadata["worse_by_years"].value > check.metadata["tolerance_years"].value
    assert "refused" in (check.description or "") and "worse by +" in (check.description or "")
    assert promoted(root) == "first", "a refused export leaves the promoted one in place"
    assert not worse.asset_materializations_for_node("promoted_model")

    write_image_arrays(root, "split2", *faces(30, 500))  # new data: other test faces
    new_export(root, "better", train, ages)
    better = promote(root)
    check = gate_result(better)
    assert better.success and check.passed and promoted(root) == "better"
    assert check.metadata["reference_fingerprint"].value == reference.fingerprint, "still the first test split"
    assert check.metadata["promoted_reference_mae"].value == first_mae
    assert check.metadata["challenger_reference_mae"].value < first_mae
    replaced = better.asset_materializations_for_node("promoted_model")[0].metadata["replaced"].value
    assert replaced == "first"


def test_retraining_and_new_data_go_through_the_gate() -> None:
    defs = build_defs({"AGE_ASSETS_BACKBONES": "mobilenet_v3_small"})
    graph = defs.resolve_asset_graph()
    promoted_key = dg.AssetKey(PROMOTED)
    for target in (defs.get_schedule_def("weekly_retraining").target, defs.get_sensor_def("raw_data_changed")
                   .targets[0]):
        selection = target.resolvable_to_job.selection if hasattr(target, "resolvable_to_job") else None
        assert selection is not None and promoted_key in selection.resolve(graph)


def test_predict_and_serve_use_the_promoted_model_and_say_when_there_is_none(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "data"
    newest, promoted_folder = root / "exported_model" / "b", root / "exported_model" / "a"
    atomic_write_text(Pointer.path(root, "exported_model"), Pointer("Export", newest, "b").text(root))
    assert model_file(None, str(root), "onnx") == newest.resolve() / "age_estimator.onnx"
    assert "no model promoted" in capsys.readouterr().err
    atomic_write_text(Pointer.path(root, PROMOTED), Pointer("Export", promoted_folder, "a").text(root))
    assert model_file(None, str(root), "litert") == promoted_folder.resolve() / "age_estimator.tflite"
    newest.mkdir(parents=True)
    assert model_file(str(newest), str(root), "litert") == newest / "age_estimator.tflite", "--model wins"
    assert capsys.readouterr().err == ""
