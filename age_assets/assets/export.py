"""exported_model: every trained member in one model file per runtime, and the check that each file
computes what the Keras model computes.

Annotations here stay evaluated (no ``from __future__ import annotations``): Dagster reads the
config class from the asset function's ``config`` annotation.
"""

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg
import joblib
import numpy as np
import pandas as pd

from age_assets.artifacts import PROBABILITY_COLUMNS, Ensemble, Export, ImageSet, TrainedModel
from age_assets.assets.names import MODELS
from age_assets.assets.outputs import artifact_output
from age_assets.assets.versioning import VersionedConfig, code_version, data_version
from age_assets.ml.backbones import get_backbone
from age_assets.ml.intervals import IntervalTable
from age_assets.ml.metrics import mae
from age_assets.ml.npy import iter_blocks
from age_assets.resources import Storage
from age_assets.storage import atomic_write_text, bytes_on_disk

if TYPE_CHECKING:
    from age_assets.ml.export import Member

Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
"""A runtime's prediction for a batch of uint8 crops: ages and bucket probabilities."""

AGREEMENT_YEARS = 0.05
"""Largest difference in age allowed between an export and the Keras model, on any validation image."""
AGREEMENT_PROBABILITY = 0.01
"""Likewise for any bucket probability."""


class ExportConfig(VersionedConfig):
    pass


EXPORT_VERSION = code_version("3", ExportConfig)


def _outputs(predict: Predict, images: Path, batch: int = 64) -> pd.DataFrame:
    """Ages and bucket probabilities of ``predict(uint8 batch) -> (ages, buckets)`` over a stack."""
    ages, buckets = zip(*(predict(np.ascontiguousarray(b)) for b in iter_blocks(images, batch)))
    table = pd.DataFrame(np.concatenate(buckets), columns=PROBABILITY_COLUMNS)
    table.insert(0, "age", np.concatenate(ages))
    return table


def export_asset(backbones: list[str]) -> dg.AssetsDefinition:
    classifiers = [f"classifier_{b}" for b in backbones]

    @dg.asset(
        ins={name: dg.AssetIn() for name in classifiers},
        code_version=EXPORT_VERSION,
        kinds={"tensorflow", "onnx", "tflite"},
        group_name=MODELS,
        description="One self-contained age estimator: uint8 face crops in, the ensemble's age and the 7 bucket "
                    "probabilities out (with `export.json`'s table of 80% and 90% age intervals calibrated on "
                    "the validation split) (resize, preprocessing, every member, mirror averaging, member weights and "
                    "the bucket stacker inside), as a SavedModel, a LiteRT flatbuffer and ONNX.",
    )
    def exported_model(
        context: dg.AssetExecutionContext, config: ExportConfig, image_arrays: ImageSet, ensemble: Ensemble,
        bucket_ensemble: TrainedModel, storage: Storage, **trained: TrainedModel,
    ) -> dg.Output[Export]:
        started = time.perf_counter()
        fingerprint = data_version(EXPORT_VERSION, config, image_arrays.fingerprint, ensemble.fingerprint,
                                   bucket_ensemble.fingerprint, {c: trained[c].fingerprint for c in classifiers})
        members = ensemble.info()["members"]
        image_size = ensemble.info()["image_size"]

        def build(folder: Path) -> None:
            from age_assets.ml.export import export_all, inference_model, load_member

            def member(path: Path, backbone: str, mirror_average: bool, **roles: Any) -> "Member":
                spec = get_backbone(backbone)
                return load_member(path, scale=spec.scale, offset=spec.offset, mirror_average=mirror_average,
                                   **roles)

            weighted = {m["name"]: m for m in members}
            loaded = [member(ensemble.folder / m["model"], m["backbone"], m["mirror_average"],
                             age_weight=m["weight"], buckets=m["name"] in classifiers)
                      for m in members]
            loaded += [member(trained[c].model_path, b, trained[c].info()["settings"]["mirror_average"],
                              buckets=True)
                       for c, b in zip(classifiers, backbones) if c not in weighted]
            model = inference_model(image_size, loaded, joblib.load(bucket_ensemble.folder / "stacker.joblib"))
            context.log.info(f"running the assembled model on {len(image_arrays.labels('valid'))} validation images")

            def keras_predict(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                out = model.predict_on_batch(batch)
                return out["age"], out["buckets"]

            keras_outputs = _outputs(keras_predict, image_arrays.images_path("valid"))
            keras_outputs.to_csv(folder / "valid_predictions.csv", index=False)
            intervals = IntervalTable.calibrate(keras_outputs["age"].to_numpy(),
                                                image_arrays.labels("valid")[ensemble.info()["target"]].to_numpy())
            context.log.info("writing SavedModel, LiteRT and ONNX")
            export_all(model, folder, image_size, target=ensemble.info()["target"],
                       members=[{k: m[k] for k in ("name", "backbone", "weight")} for m in members],
                       classifiers=classifiers, bucket_stacker="bucket_ensemble",
                       intervals=intervals.to_json())

        def metadata(result: Export) -> dict[str, Any]:
            reference = result.reference()
            truth = image_arrays.labels("valid")[ensemble.info()["target"]].to_numpy()
            graph_ages = ensemble.predictions("valid")["age"].to_numpy()
            graph_buckets = bucket_ensemble.predictions("valid")["bucket"].to_numpy()
            sizes = {name: bytes_on_disk(result.folder / file) for name, file in result.info()["files"].items()}
            return {
                "val_mae": round(mae(reference["age"].to_numpy(), truth), 2),
                "val_max_age_difference_to_ensemble": round(float(np.abs(reference["age"] - graph_ages).max()), 3),
                "val_bucket_agreement_with_bucket_ensemble": round(float(np.mean(
                    reference[PROBABILITY_COLUMNS].to_numpy().argmax(axis=1) == graph_buckets)), 4),
                **{f"size_mb_{name}": round(size / 1e6, 1) for name, size in sizes.items()},
                "folder": dg.MetadataValue.path(str(result.folder)),
            }

        return artifact_output(storage, "exported_model", fingerprint, build, Export, started, metadata)

    return exported_model


def _saved_model_predict(folder: Path) -> Predict:
    import tensorflow as tf

    serve = tf.saved_model.load(str(folder)).signatures["serving_default"]

    def predict(batch: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        out = serve(faces=tf.constant(batch))
        return out["age"].numpy(), out["buckets"].numpy()

    return predict


AGREEMENT_VERDICT = "agreement.json"
"""In the export folder: the agreement check's verdict and metadata, with the tolerances and validation images
it was reached under."""


@dg.asset_check(asset="exported_model", blocking=True, additional_ins={"image_arrays": dg.AssetIn("image_arrays")},
                description=f"Each export (SavedModel, LiteRT, ONNX) reproduces the Keras model on every validation "
                            f"image: ages within {AGREEMENT_YEARS} years, bucket probabilities within "
                            f"{AGREEMENT_PROBABILITY}. An unchanged export reuses its stored verdict.")
def exports_agree_with_keras(image_arrays: ImageSet, exported_model: Export) -> dg.AssetCheckResult:
    started = time.perf_counter()
    stored = exported_model.folder / AGREEMENT_VERDICT
    reached_under = {"years": AGREEMENT_YEARS, "probability": AGREEMENT_PROBABILITY,
                     "images": image_arrays.fingerprint}
    verdict = json.loads(stored.read_text()) if stored.is_file() else {}
    reused = verdict.get("reached_under") == reached_under
    if not reused:
        passed, metadata = _agreement(image_arrays, exported_model)
        verdict = {"reached_under": reached_under, "passed": passed, "metadata": metadata}
        atomic_write_text(stored, json.dumps(verdict, indent=1))
    return dg.AssetCheckResult(passed=verdict["passed"], severity=dg.AssetCheckSeverity.ERROR, metadata={
        **verdict["metadata"], "reused": reused, "check_seconds": round(time.perf_counter() - started, 2)})


def _agreement(image_arrays: ImageSet, exported_model: Export) -> tuple[bool, dict[str, float]]:
    """Whether every export file reproduces the Keras model's stored outputs, and by how much each differs.

    The export folder is named by the fingerprint of everything that made it (the validation
    images included), so its verdict holds for as long as the folder exists."""
    from age_assets.serving.runtime import ExportedModel

    reference = exported_model.reference()
    files = exported_model.info()["files"]
    metadata: dict[str, float] = {}
    passed = True
    for name, file in files.items():
        path = exported_model.folder / file
        started = time.perf_counter()
        predict = _saved_model_predict(path) if name == "saved_model" else ExportedModel(path).predict
        table = _outputs(predict, image_arrays.images_path("valid"))
        years = float(np.abs(table["age"] - reference["age"]).max())
        probability = float(np.abs(table[PROBABILITY_COLUMNS].to_numpy()
                                   - reference[PROBABILITY_COLUMNS].to_numpy()).max())
        passed &= years <= AGREEMENT_YEARS and probability <= AGREEMENT_PROBABILITY
        metadata |= {f"{name}_max_age_difference": round(years, 5), f"{name}_max_probability_difference":
                     round(probability, 6), f"{name}_seconds": round(time.perf_counter() - started, 1)}
    return passed, metadata
