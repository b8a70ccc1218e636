"""bucket_ensemble: the age buckets from the ensemble's age and every classifier's probabilities."""

import json
import time
from pathlib import Path

import dagster as dg
import joblib
import numpy as np

from age_assets.artifacts import PROBABILITY_COLUMNS, Ensemble, ImageSet, TrainedModel, write_predictions
from age_assets.assets.checks import IN_SAMPLE_ACCURACY, valid_bucket_accuracy
from age_assets.assets.names import EVALUATED, MODELS
from age_assets.assets.outputs import artifact_output
from age_assets.assets.versioning import VersionedConfig, code_version, data_version
from age_assets.ml.bucket_stacking import all_buckets, bucket_stacker, cross_validated_accuracy, stacking_inputs
from age_assets.ml.buckets import age_to_bucket
from age_assets.resources import Storage


class BucketEnsembleConfig(VersionedConfig):
    pass


BUCKET_ENSEMBLE_VERSION = code_version("1", BucketEnsembleConfig)


def bucket_ensemble_asset(backbones: list[str]) -> dg.AssetsDefinition:
    classifiers = [f"classifier_{b}" for b in backbones]

    @dg.asset(
        ins={name: dg.AssetIn() for name in classifiers},
        code_version=BUCKET_ENSEMBLE_VERSION,
        kinds={"scikitlearn"},
        group_name=MODELS,
        description="The 7 age buckets from the ensemble's age and every classifier's probabilities: a "
                    "logistic regression fitted on the validation split. Its validation accuracy is given twice: "
                    f"`val_accuracy_cross_validated` on held-out folds, `{IN_SAMPLE_ACCURACY}` on the faces it "
                    "was fitted on (what its check compares).",
    )
    def bucket_ensemble(
        context: dg.AssetExecutionContext, config: BucketEnsembleConfig, image_arrays: ImageSet,
        ensemble: Ensemble, storage: Storage, **trained: TrainedModel,
    ) -> dg.Output[TrainedModel]:
        started = time.perf_counter()
        fingerprint = data_version(BUCKET_ENSEMBLE_VERSION, config, image_arrays.fingerprint, ensemble.fingerprint,
                                   {name: trained[name].fingerprint for name in classifiers})
        ages = {split: ensemble.predictions(split)["age"].to_numpy() for split in EVALUATED}
        probabilities = {split: [trained[c].predictions(split)[PROBABILITY_COLUMNS].to_numpy() for c in classifiers]
                         for split in EVALUATED}
        inputs = {split: stacking_inputs(ages[split], probabilities[split]) for split in EVALUATED}
        truth = age_to_bucket(image_arrays.labels("valid")["real_age"].to_numpy())
        if len(np.unique(truth)) < 2:
            raise dg.Failure(f"the validation split of {image_arrays.folder} holds a single age bucket; "
                             "nothing to fit the bucket ensemble on")

        def build(folder: Path) -> None:
            stacker = bucket_stacker().fit(inputs["valid"], truth)
            joblib.dump(stacker, folder / "stacker.joblib")
            write_predictions(folder / "predictions.csv",
                              {split: all_buckets(stacker, inputs[split]) for split in EVALUATED})
            info = {"kind": "bucket_ensemble", "inputs": ["ensemble", *classifiers],
                    "val_accuracy_cross_validated": cross_validated_accuracy(inputs["valid"], truth)}
            (folder / "info.json").write_text(json.dumps(info, indent=1))

        def metadata(result: TrainedModel) -> dict[str, float]:
            held_out = result.info()["val_accuracy_cross_validated"]
            averaged = np.mean(probabilities["valid"], axis=0)
            return {
                "val_accuracy_cross_validated": round(held_out, 3) if held_out is not None else float("nan"),
                IN_SAMPLE_ACCURACY: round(valid_bucket_accuracy(result, image_arrays), 3),
                "val_accuracy_classifiers_averaged": round(float(np.mean(averaged.argmax(axis=1) == truth)), 3),
                "val_accuracy_ensemble_age": round(float(np.mean(age_to_bucket(ages["valid"]) == truth)), 3),
            }

        return artifact_output(storage, "bucket_ensemble", fingerprint, build, TrainedModel, started, metadata)

    return bucket_ensemble
