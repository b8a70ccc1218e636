"""The whole graph through exported_model and model_card on generated faces, then `age-assets predict`."""

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from age_assets.artifacts import Ensemble, Export
from age_assets.cli import main
from age_assets.definitions import DEFAULT_BACKBONES
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.ml.metrics import mae
from age_assets.serving.scenes import background, box_iou, make_scene
from age_assets_tests.conftest import SHARED_UTKFACE, SHARED_WEIGHTS, synthetic_face, write_utkface

pytestmark = [
    pytest.mark.slow,
    pytest.mark.shared,
    pytest.mark.skipif(not (SHARED_WEIGHTS / "mobilenet_v3_small.weights.h5").is_file(),
                       reason="needs ../shared/weights"),
    pytest.mark.xdist_group("graph"),  # one worker builds the module's graph once
]
BACKBONES = tuple(DEFAULT_BACKBONES.split(","))  # the graph as `make run` builds it
LAST = BACKBONES[-1]
TRAINED = {f"{kind}_{b}" for kind in ("model", "classifier") for b in BACKBONES}
TRAIN = {"epochs": 4, "units": 32, "learning_rate": 1e-2, "patience": 4, "train_last": 0}
CONFIG = {"ops": {
    # The face-domain backbone's pooled features are nearly all zero below 64 pixels.
    "image_arrays": {"config": {"image_size": 64}},
    "augmented_train": {"config": {"factor": 2}},
    **{name: {"config": TRAIN} for name in TRAINED},
}}


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory):
    import dagster as dg

    from age_assets.definitions import build_defs

    root = tmp_path_factory.mktemp("graph")
    write_utkface(root / "faces", n=100)
    env = {"AGE_ASSETS_DATASET": f"utkface:{root / 'faces'}", "AGE_ASSETS_DATA_DIR": str(root / "data"),
           "AGE_ASSETS_BACKBONES": ",".join(BACKBONES), "AGE_ASSETS_WEIGHTS_DIR": str(SHARED_WEIGHTS)}
    defs = build_defs(env)
    # Of the checks, only the export's: a tiny model on 100 faces need not beat the baselines.
    export_check = [c for c in defs.asset_checks if any(k.name == "exports_agree_with_keras" for k in c.check_keys)]
    result = dg.materialize([*defs.assets, *export_check], resources=defs.resources, run_config=CONFIG)
    return root, result


def test_report_has_every_model_and_its_keys(graph) -> None:
    root, result = graph
    report = json.loads((root / "data" / "reports" / "evaluation.json").read_text())
    assert set(report) == {"dataset", "ages", "classifiers", "groups", "intervals"}
    valid_faces = len(result.output_for_node("image_arrays").labels("valid"))
    assert set(report["intervals"]) == {key for key, fewest in (("80", 9), ("90", 19)) if valid_faces >= fewest}, \
        "every coverage the validation faces support, and no other"
    for intervals in report["intervals"].values():
        assert sum(b["faces"] for b in intervals["per_band"].values()) == report["dataset"]["test_images"]
        assert 0 <= intervals["coverage"] <= 1 and 0 < intervals["mean_width"] < 100
    assert set(report["ages"]) == TRAINED | {"ensemble"}, "classifiers over years give ages too"
    assert set(report["classifiers"]) == {f"classifier_{b}" for b in BACKBONES} | {"classifiers_averaged",
                                                                                   "bucket_ensemble"}
    for metrics in report["ages"].values():
        assert {"mae", "cs5", "bucket_accuracy", "bucket_macro_f1", "mae_per_bucket",
                "confusion_matrix"} <= set(metrics)
        assert 0 <= metrics["cs5"] <= 1 and metrics["mae"] >= 0
        assert "mae_apparent" not in metrics, "UTKFace has no votes"
    for metrics in report["classifiers"].values():
        assert np.array(metrics["confusion_matrix"]).sum() == report["dataset"]["test_images"]
    assert (root / "data" / "reports" / "evaluation.md").read_text().startswith("# Evaluation on the test split")
    metadata = result.asset_materializations_for_node("evaluation_report")[0].metadata
    assert metadata["test_mae_ensemble"].value == round(report["ages"]["ensemble"]["mae"], 2)


def test_ensemble_weights_are_fitted_and_compared_with_the_study(graph) -> None:
    _, result = graph
    ensemble: Ensemble = result.output_for_node("ensemble")
    info = ensemble.info()
    weights = [m["weight"] for m in info["members"]]
    assert all(w >= 0 for w in weights) and any(w > 0 for w in weights)
    assert ("val_mae_regressors_study_weights_0.6_0.4" in info) == (len(BACKBONES) == 2), "the study had two"
    assert info["val_mae_regressors_alone"] > 0
    assert {m["name"] for m in info["members"]} == TRAINED
    assert info["val_mae_ensemble"] <= max(info[f"val_mae_model_{b}"] for b in BACKBONES)
    model_meta = result.asset_materializations_for_node(f"model_{LAST}")[0].metadata
    model = result.output_for_node(f"model_{LAST}")
    labels = result.output_for_node("image_arrays").labels("valid")
    stored = mae(model.predictions("valid")["age"], labels["real_age"])
    assert model_meta["val_mae"].value == pytest.approx(stored, abs=0.006), "of the stored (mirror-averaged) ages"
    assert model_meta["device"].value in {"CPU", "GPU"} and model_meta["val_mae_one_view_best_epoch"].value > 0
    assert model_meta["settings"].value == "train_last=0,units=32,learning_rate=0.01,epochs=4,patience=4"
    assert model.info()["settings"] | TRAIN == model.info()["settings"], "info.json holds every setting"
    assert {"train_on", "dropout", "seed", "loss", "output", "batch_size"} <= set(model.info()["settings"])
    assert model_meta["learning_curves"].value.startswith("![learning curves](data:image/png;base64,")
    classifier_meta = result.asset_materializations_for_node(f"classifier_{LAST}")[0].metadata
    classifier = result.output_for_node(f"classifier_{LAST}")
    truth = age_to_bucket(result.output_for_node("image_arrays").labels("valid")["real_age"].to_numpy())
    predicted = classifier.predictions("valid")["bucket"].to_numpy()
    assert classifier_meta["val_accuracy"].value == pytest.approx(np.mean(predicted == truth), abs=6e-4)
    assert classifier_meta["val_mae"].value > 0, "a classifier over years gives a median age"
    assert classifier_meta["val_confusion_matrix"].value.count("\n") == 1 + 7


def test_bucket_ensemble_gives_probabilities_over_all_buckets_for_both_splits(graph) -> None:
    _, result = graph
    stacked = result.output_for_node("bucket_ensemble")
    for split in ("valid", "test"):
        table = stacked.predictions(split)
        probabilities = table[[c for c in table if c.startswith("p_")]].to_numpy()
        assert probabilities.shape == (len(result.output_for_node("image_arrays").labels(split)), 7)
        assert np.allclose(probabilities.sum(axis=1), 1) and (table["bucket"] == probabilities.argmax(axis=1)).all()
    assert (stacked.folder / "stacker.joblib").stat().st_size > 0


def test_exported_model_reproduces_the_graph_and_its_check_passes(graph) -> None:
    _, result = graph
    export: Export = result.output_for_node("exported_model")
    assert {"saved_model", "age_estimator.tflite", "age_estimator.onnx", "export.json"} <= {
        p.name for p in export.folder.iterdir()}
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    agreement = checks["exports_agree_with_keras"]
    assert agreement.passed
    for name in ("saved_model", "litert", "onnx"):
        assert agreement.metadata[f"{name}_max_age_difference"].value <= 0.05
    metadata = result.asset_materializations_for_node("exported_model")[0].metadata
    assert metadata["val_max_age_difference_to_ensemble"].value < 0.1
    assert metadata["val_bucket_agreement_with_bucket_ensemble"].value >= 0.95
    assert metadata["folder"].value == str(export.folder)


def test_model_card_lies_beside_the_export_with_the_group_figures(graph) -> None:
    root, result = graph
    export: Export = result.output_for_node("exported_model")
    card = (export.folder / "MODEL_CARD.md").read_text()
    report = json.loads((root / "data" / "reports" / "evaluation.json").read_text())
    assert result.asset_materializations_for_node("model_card")[0].metadata["card"].value == card
    assert set(report["groups"]["groups"]) == {"age band", "gender", "race"}, "UTKFace names give both"
    assert f"MAE {report['ages']['ensemble']['mae']:.2f} years" in card
    assert "| race | faces |" in card and "`age_estimator.onnx`" in card


def _csv(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), keep_default_na=False)


def test_predict_on_crops_matches_the_ensemble_on_its_test_images(graph, capsys: pytest.CaptureFixture) -> None:
    root, result = graph
    ensemble: Ensemble = result.output_for_node("ensemble")
    labels = result.output_for_node("image_arrays").labels("test")
    assert main(["predict", *labels["face_path"], "--crops", "--data-dir", str(root / "data")]) == 0
    out = _csv(capsys.readouterr().out)
    assert list(out["path"]) == list(labels["face_path"]) and (out["face"] == 0).all()
    assert np.allclose(out["age"], ensemble.predictions("test")["age"], atol=0.1)
    stacked = result.output_for_node("bucket_ensemble").predictions("test")
    assert np.mean(out["bucket"].to_numpy() == np.array(BUCKET_LABELS)[stacked["bucket"]]) >= 0.95
    probabilities = out[[f"p_{label}" for label in BUCKET_LABELS]].to_numpy()
    assert np.allclose(probabilities.sum(axis=1), 1, atol=1e-3)


def test_predict_on_onnx_runtime_gives_the_same_ages(graph, capsys) -> None:
    root, _ = graph
    faces = [str(p) for p in sorted((root / "faces").iterdir())[:5]]
    ages = {}
    for runtime in ("litert", "onnx"):
        assert main(["predict", *faces, "--crops", "--runtime", runtime, "--data-dir", str(root / "data")]) == 0
        ages[runtime] = _csv(capsys.readouterr().out)["age"].to_numpy()
    assert np.allclose(ages["litert"], ages["onnx"], atol=0.11)  # printed to 0.1 years


def test_predict_takes_folders_and_any_size_and_names_a_non_image(graph, tmp_path: Path, capsys) -> None:
    root, _ = graph
    synthetic_face(40, size=300).save(tmp_path / "big.png")
    synthetic_face(40, size=20).save(tmp_path / "small.jpg")
    (tmp_path / "notes.txt").write_text("skipped: not an image suffix")
    assert main(["predict", str(tmp_path), "--crops", "--data-dir", str(root / "data")]) == 0
    out = _csv(capsys.readouterr().out)
    assert sorted(Path(p).name for p in out["path"]) == ["big.png", "small.jpg"]
    (tmp_path / "fake.jpg").write_text("this is text")
    assert main(["predict", str(tmp_path / "fake.jpg"), "--crops", "--data-dir", str(root / "data")]) == 1
    captured = capsys.readouterr()
    assert "fake.jpg: not an image" in captured.err
    assert _csv(captured.out)["note"].str.startswith("error: ").all()


def test_predict_without_an_export_says_what_to_build(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match=r"--select '\*exported_model'"):
        main(["predict", "x.jpg", "--data-dir", str(tmp_path)])


def test_predict_names_a_truncated_image_and_a_damaged_model(graph, tmp_path: Path, capsys) -> None:
    root, result = graph
    face = tmp_path / "cut.jpg"
    synthetic_face(30, size=64).save(face, quality=95)
    face.write_bytes(face.read_bytes()[:600])
    assert main(["predict", str(face), "--crops", "--data-dir", str(root / "data")]) == 1
    assert f"{face}: damaged or truncated image" in capsys.readouterr().err

    export: Export = result.output_for_node("exported_model")
    copy = tmp_path / "export"
    shutil.copytree(export.folder, copy)
    model = copy / "age_estimator.tflite"
    model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    synthetic_face(30).save(tmp_path / "face.jpg")
    assert main(["predict", str(tmp_path / "face.jpg"), "--crops", "--model", str(copy)]) == 2
    assert f"{model}: cannot be loaded" in capsys.readouterr().err


def test_predict_finds_each_face_in_pictures_and_says_when_there_is_none(graph, tmp_path: Path, capsys) -> None:
    root, _ = graph
    rng = np.random.default_rng(0)
    real = [np.asarray(Image.open(p).convert("RGB")) for p in sorted(SHARED_UTKFACE.glob("*.jpg"))[:3]]
    one, two = make_scene(real[:1], rng), make_scene(real[1:], rng, size=(900, 500))
    (tmp_path / "one.jpg").write_bytes(one.jpeg)
    (tmp_path / "two.jpg").write_bytes(two.jpeg)
    Image.fromarray(background(640, 480, rng)).save(tmp_path / "none.png")
    drawn = tmp_path / "drawn"
    assert main(["predict", str(tmp_path), "--draw", str(drawn), "--data-dir", str(root / "data")]) == 0
    out = _csv(capsys.readouterr().out)
    rows = {name: out[out["path"].str.endswith(name)] for name in ("one.jpg", "two.jpg", "none.png")}
    assert len(rows["one.jpg"]) == 1 and len(rows["two.jpg"]) == 2
    assert rows["none.png"]["note"].tolist() == ["no face found"]
    box = tuple(rows["one.jpg"][["x", "y", "width", "height"]].astype(int).iloc[0])
    assert box_iou(box, one.boxes[0]) >= 0.5
    assert (rows["two.jpg"]["score"].astype(float) >= 0.5).all()
    assert sorted(p.name for p in drawn.iterdir()) == ["none.jpg", "one.jpg", "two.jpg"]
    assert Image.open(drawn / "two.jpg").size == (900, 500)
