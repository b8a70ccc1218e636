"""The model half of the graph: one regressor and one bucket classifier per backbone, an ensemble."""

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
import numpy as np
import pandas as pd
import pydantic
from pydantic import Field

from age_assets.artifacts import Ensemble, ImageSet, TrainedModel, write_predictions
from age_assets.assets.metadata import png
from age_assets.assets.names import EVALUATED, MODELS, ONE_GPU_ON_KUBERNETES, TRAINING_POOL
from age_assets.assets.outputs import artifact_output
from age_assets.assets.versioning import VersionedConfig, code_version, data_version
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.ml.ensemble import combine, fit_weights
from age_assets.ml.evaluation import classifier_metrics
from age_assets.ml.metrics import mae
from age_assets.ml.recipes import UNMEASURED, cpu_recipe
from age_assets.ml.specs import (
    REGRESSION_LOSS,
    REGRESSION_OUTPUT,
    EstimatorSpec,
    FitSpec,
    HeadSpec,
    Optimizer,
    Output,
    RegressionLoss,
    Schedule,
    TrainOn,
)
from age_assets.plots import learning_curves
from age_assets.resources import Accelerator, BackboneWeights, ExperimentTracking, Storage

if TYPE_CHECKING:  # Keras loads in the step that trains, not with the code location
    from age_assets.ml.estimator import Stack


class TrainingConfig(VersionedConfig):
    """Settings every kind of training shares. The defaults here are those of ``FitSpec`` and
    ``HeadSpec``; each asset's config class overrides some with its backbone's recipe
    (``ml/recipes.py``), so that the launchpad shows the values that will be used."""

    train_last: int = Field(default=UNMEASURED.train_last,
                            description="Backbone layers that train, counted from the top: 0 none, -1 all")
    units: int = Field(default=HeadSpec.units, description="Units of the head's Dense layer (0: no Dense layer)")
    activation: str = Field(default=HeadSpec.activation, description="Activation of the head's Dense layer")
    dropout: float = Field(default=HeadSpec.dropout,
                           description="Dropout after the Dense layer (the study used 0.5-0.7)")
    l2: float = Field(default=HeadSpec.l2, description="L2 penalty on the Dense layer (the study's alternative: 0.01)")
    optimizer: Optimizer = Field(default=FitSpec.optimizer, description="Optimizer")
    learning_rate: float = Field(default=UNMEASURED.learning_rate,
                                 description="Learning rate (the study fine-tuned at 1e-5)")
    schedule: Schedule = Field(
        default=UNMEASURED.schedule,
        description="Learning rate: 'constant', or 'cosine': decayed along a half cosine to 0 by the last epoch's end",
    )
    epochs: int = Field(default=UNMEASURED.epochs, description="Most epochs")
    patience: int = Field(default=UNMEASURED.patience,
                          description="Early stopping: epochs without a better validation score")
    batch_size: int = Field(default=FitSpec.batch_size, description="Batch size")
    train_on: TrainOn = Field(
        default=UNMEASURED.train_on, description="Train on augmented_train or on the plain training split"
    )
    copies: int = Field(
        default=UNMEASURED.copies, ge=0,
        description="With train_on 'augmented': train on the first this many copies of each image (the original "
                    "and copies - 1 augmented ones); 0, or more than it holds, takes every copy",
    )
    seed: int = Field(default=FitSpec.seed, description="Seed of weight initialisation and shuffling")
    mirror_average: bool = Field(
        default=True, description="Predict each image and its left-right mirror image and average the two"
    )

    def _spec(self, backbone: str, weights: str | None, image_size: int, output: str, loss: str,
              **kind: Any) -> EstimatorSpec:
        return EstimatorSpec(
            backbone=backbone, weights=weights, image_size=image_size, train_last=self.train_last,
            head=HeadSpec(units=self.units, activation=self.activation, dropout=self.dropout, l2=self.l2,
                          output=output),
            fit=FitSpec(optimizer=self.optimizer, learning_rate=self.learning_rate, schedule=self.schedule, loss=loss,
                        epochs=self.epochs, patience=self.patience, batch_size=self.batch_size, seed=self.seed),
            mirror_average=self.mirror_average, **kind,
        )


class ModelConfig(TrainingConfig):
    output: Output = Field(
        default=REGRESSION_OUTPUT,
        description="'sigmoid' scaled to 0-100 years (the study's), 'linear', or 'expectation' (the mean of a softmax "
                    "over every year 0-100); each starts at the training mean",
    )
    loss: RegressionLoss = Field(default=REGRESSION_LOSS, description="Loss on ages in years")
    target: Literal["auto", "real", "apparent"] = Field(
        default="auto", description="Age to learn: 'auto' is apparent where the dataset has votes, else real"
    )

    def target_column(self, labels: pd.DataFrame) -> str:
        if self.target == "auto":
            return "apparent_age_mean" if labels["apparent_age_mean"].notna().all() else "real_age"
        column = f"{self.target}_age" if self.target == "real" else "apparent_age_mean"
        if labels[column].isna().any():
            raise dg.Failure(f"target '{self.target}' asked for, but the dataset has no {column} for every image")
        return column

    def targets(self, ages: np.ndarray) -> np.ndarray:
        return ages

    def estimator_spec(self, backbone: str, weights: str | None, image_size: int) -> EstimatorSpec:
        return self._spec(backbone, weights, image_size, self.output, self.loss)


class ClassifierConfig(TrainingConfig):
    age_sigma: float = Field(
        default=2.0, ge=0.0,
        description="Learn a softmax over every year 0-100 from a Gaussian this many years wide around the true "
                    "age, sum it into the buckets and take its median as an age for the ensemble; 0: a softmax "
                    "over the 7 buckets learned from the bucket alone",
    )

    def target_column(self, labels: pd.DataFrame) -> str:
        return "real_age"

    def targets(self, ages: np.ndarray) -> np.ndarray:
        return ages if self.age_sigma else age_to_bucket(ages)

    def estimator_spec(self, backbone: str, weights: str | None, image_size: int) -> EstimatorSpec:
        return self._spec(backbone, weights, image_size, "softmax", "sparse_categorical_crossentropy",
                          classes=len(BUCKET_LABELS), age_sigma=self.age_sigma)


class EnsembleConfig(VersionedConfig):
    pass


@dataclass(frozen=True)
class TrainingKind:
    """A kind of trained asset: its name prefix, config class, code revision, validation metric and
    description."""

    name: str
    config: type[ModelConfig] | type[ClassifierConfig]
    revision: str
    metric: str
    description: str  # with {backbone}

    def config_for(self, backbone: str) -> type[TrainingConfig]:
        """``config`` with ``backbone``'s CPU recipe as its defaults."""
        base: type[TrainingConfig] = self.config
        fields = base.model_fields
        defaults: dict[str, Any] = {
            name: (fields[name].annotation, Field(default=value, description=fields[name].description))
            for name, value in cpu_recipe(backbone, self.name).as_dict().items()
        }
        return pydantic.create_model(f"{base.__name__}_{backbone}", __base__=base, **defaults)


REGRESSOR = TrainingKind("model", ModelConfig, "2", "mae",
                         "{backbone} regressor of age in years: ImageNet weights, the study's head.")
CLASSIFIER = TrainingKind("classifier", ClassifierConfig, "3", "accuracy",
                          f"{{backbone}} classifier of the 7 age buckets {', '.join(BUCKET_LABELS)}.")
ENSEMBLE_VERSION = code_version("3", EnsembleConfig)


def _stacks(
    images: ImageSet, train_set: ImageSet, targets: Callable[[pd.DataFrame], np.ndarray], copies: int = 0
) -> tuple["Stack", "Stack", dict[str, "Stack"]]:
    """The training stack (the first ``copies`` copies of each image where ``train_set`` is augmented
    and ``copies`` is set), the validation stack and the evaluated ones."""
    from age_assets.ml.estimator import Stack

    def stack(source: ImageSet, split: str) -> Stack:
        return Stack(source.images_path(split), targets(source.labels(split)), f"{source.fingerprint}/{split}")

    evaluated = {split: stack(images, split) for split in EVALUATED}
    train, labels = stack(train_set, "train"), train_set.labels("train")
    if copies and "copy" in labels:
        train = train.first_copies(labels["copy"].to_numpy(), copies)
    return train, evaluated["valid"], evaluated


def changed_settings(config: VersionedConfig) -> str:
    """The settings that differ from the config class's defaults, as ``name=value,...``, or ``defaults``."""
    defaults = type(config)().model_dump()
    changed = [f"{k}={v}" for k, v in config.model_dump().items() if defaults.get(k) != v]
    return ",".join(changed) or "defaults"


def trained_asset(kind: TrainingKind, backbone: str) -> dg.AssetsDefinition:
    """``model_<backbone>`` or ``classifier_<backbone>``: trained on cached frozen features where the
    backbone's front is frozen, evaluated on the validation and test splits."""
    asset = f"{kind.name}_{backbone}"
    config_type: Any = kind.config_for(backbone)  # built at run time: typed loosely
    version = code_version(kind.revision, config_type)

    @dg.asset(
        name=asset,
        code_version=version,
        kinds={"keras", "tensorflow"},
        group_name=MODELS,
        pool=TRAINING_POOL,
        op_tags=ONE_GPU_ON_KUBERNETES,
        description=kind.description.format(backbone=backbone),
    )
    def train(
        context: dg.AssetExecutionContext,
        config: config_type,  # type: ignore[valid-type]  # Dagster reads the config class from this annotation
        image_arrays: ImageSet,
        augmented_train: ImageSet,
        storage: Storage,
        weights: BackboneWeights,
        accelerator: Accelerator,
        tracking: ExperimentTracking,
    ) -> dg.Output[TrainedModel]:
        started = time.perf_counter()
        settings = changed_settings(config)
        context.instance.add_run_tags(context.run.run_id, {f"age_assets/{asset}": settings})
        train_set = augmented_train if config.train_on == "augmented" else image_arrays
        fingerprint = data_version(version, config, backbone, weights.identity(backbone), *accelerator.identity(),
                                   image_arrays.fingerprint, train_set.fingerprint)
        column = config.target_column(image_arrays.labels("train"))
        params = {"backbone": backbone, "target": column, **config.model_dump()}

        def build(folder: Path) -> None:
            from age_assets.ml.estimator import train_estimator
            from age_assets.ml.training import TrainingDiverged, TrainingStalled

            device = accelerator.activate()
            context.log.info(f"training {asset} on {device} with {settings}")
            spec = config.estimator_spec(backbone, weights.source(backbone), image_arrays.images("train").shape[1])
            stacks = _stacks(image_arrays, train_set, lambda t: config.targets(t[column].to_numpy(np.float32)),
                             config.copies if config.train_on == "augmented" else 0)
            tags = {"fingerprint": fingerprint, "dagster_run_id": context.run.run_id}
            with tracking.run(asset, params, tags) as mlflow:
                try:
                    trained = train_estimator(spec, *stacks, storage.root / "cache" / "features", context.log.info,
                                              _epoch_logger(context.log, mlflow),
                                              checkpoints=storage.root / "cache" / "checkpoints" / asset / fingerprint,
                                              tensorboard=folder / "tensorboard")
                except (TrainingDiverged, TrainingStalled) as error:
                    raise dg.Failure(f"{asset}: {error} (settings: {settings})") from error
                trained.save(folder, {"kind": kind.name, "target": column, "settings": config.model_dump(),
                                      "device": device, "seconds": round(time.perf_counter() - started, 1)})
                if mlflow:
                    _log_result(mlflow, asset, TrainedModel(folder, fingerprint), image_arrays)

        def metadata(result: TrainedModel) -> dict[str, Any]:
            info = result.info()
            best = f"val_{kind.metric}_one_view_best_epoch"
            return {
                **_validation_metadata(result, image_arrays),
                best: round(info[best], 2 if kind.metric == "mae" else 3),
                **{k: info[k] for k in ("target", "epochs", "best_epoch", "device", "trainable_params",
                                        "train_images")},
                "settings": settings,
                "boundary": ", ".join(info["boundary"]) or "input (no cached features)",
                "learning_curves": png(learning_curves(result.history(), kind.metric), "learning curves"),
            }

        return artifact_output(storage, asset, fingerprint, build, TrainedModel, started, metadata)

    return train


def _epoch_logger(log: dg.DagsterLogManager, mlflow: Any) -> Callable[[int, dict[str, float]], None]:
    """Each epoch's scores into the step's log, and to MLflow where tracking is on."""

    def on_epoch(epoch: int, logs: dict[str, float]) -> None:
        log.info(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))
        if mlflow:
            mlflow.log_metrics(logs, step=epoch + 1)

    return on_epoch


def _log_result(mlflow: Any, asset: str, result: TrainedModel, image_arrays: ImageSet) -> None:
    """The final validation scores (``final_<name>``) and the artifact's files, into the MLflow run."""
    info = result.info()
    final = {**_validation_metadata(result, image_arrays, numbers_only=True), "best_epoch": info["best_epoch"]}
    mlflow.log_metrics({f"final_{k}": v for k, v in final.items()}, step=info["epochs"])
    mlflow.log_artifacts(str(result.folder), artifact_path=asset)


def _validation_metadata(result: TrainedModel, image_arrays: ImageSet, numbers_only: bool = False) -> dict[str, Any]:
    """Scores of the stored validation predictions, which are mirror-averaged where the model's
    settings say so: what the checks, the ensembles and the report use."""
    predictions, labels = result.predictions("valid"), image_arrays.labels("valid")
    scores: dict[str, Any] = {}
    if result.predicts_age:
        scores["val_mae"] = round(mae(predictions["age"].to_numpy(), labels[result.info()["target"]]), 2)
    if "bucket" not in predictions:
        return scores
    buckets = classifier_metrics(predictions["bucket"].to_numpy(), labels)
    scores |= {"val_accuracy": round(buckets["accuracy"], 3), "val_macro_f1": round(buckets["macro_f1"], 3)}
    if numbers_only:
        return scores
    rows = ["| true \\ predicted | " + " | ".join(BUCKET_LABELS) + " |", "|---" * (len(BUCKET_LABELS) + 1) + "|"]
    rows += [f"| {label} | " + " | ".join(map(str, counts)) + " |"
             for label, counts in zip(BUCKET_LABELS, buckets["confusion_matrix"])]
    return {**scores, "val_confusion_matrix": dg.MetadataValue.md("\n".join(rows))}


def model_asset(backbone: str) -> dg.AssetsDefinition:
    return trained_asset(REGRESSOR, backbone)


def classifier_asset(backbone: str) -> dg.AssetsDefinition:
    return trained_asset(CLASSIFIER, backbone)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def ensemble_asset(backbones: list[str]) -> dg.AssetsDefinition:
    regressors = [f"{REGRESSOR.name}_{b}" for b in backbones]
    classifiers = [f"{CLASSIFIER.name}_{b}" for b in backbones]
    backbone_of = {**dict(zip(regressors, backbones)), **dict(zip(classifiers, backbones))}

    @dg.asset(
        ins={name: dg.AssetIn() for name in regressors + classifiers},
        code_version=ENSEMBLE_VERSION,
        kinds={"keras", "scikitlearn"},
        group_name=MODELS,
        description="Every regressor's age, and the median age of every classifier over years that learned the "
                    "same target, combined with non-negative member weights fitted on the validation split.",
    )
    def ensemble(
        context: dg.AssetExecutionContext, config: EnsembleConfig, image_arrays: ImageSet, storage: Storage,
        **trained: TrainedModel,
    ) -> dg.Output[Ensemble]:
        started = time.perf_counter()
        column = trained[regressors[0]].info()["target"]
        members = regressors + [c for c in classifiers
                                if trained[c].predicts_age and trained[c].info()["target"] == column]
        fingerprint = data_version(ENSEMBLE_VERSION, config, image_arrays.fingerprint,
                                   {name: trained[name].fingerprint for name in regressors + classifiers})
        truth = {split: image_arrays.labels(split)[column].to_numpy() for split in EVALUATED}
        ages = {split: np.column_stack([trained[m].predictions(split)["age"] for m in members]) for split in EVALUATED}
        member_weights = fit_weights(ages["valid"], truth["valid"])
        scores = {f"val_mae_{m}": mae(ages["valid"][:, i], truth["valid"]) for i, m in enumerate(members)}
        scores["val_mae_ensemble"] = mae(combine(ages["valid"], member_weights), truth["valid"])
        only = ages["valid"][:, :len(regressors)]
        scores["val_mae_regressors_alone"] = mae(combine(only, fit_weights(only, truth["valid"])), truth["valid"])
        if len(regressors) == 2:
            scores["val_mae_regressors_study_weights_0.6_0.4"] = mae(combine(only, np.array([0.6, 0.4])),
                                                                     truth["valid"])

        def build(folder: Path) -> None:
            for m in members:
                _link_or_copy(trained[m].model_path, folder / f"{m}.keras")
            info = {"members": [{"name": m, "backbone": backbone_of[m], "kind": trained[m].info()["kind"],
                                 "model": f"{m}.keras", "weight": float(w),
                                 "mirror_average": bool(trained[m].info()["settings"]["mirror_average"])}
                                for m, w in zip(members, member_weights)],
                    "image_size": trained[members[0]].info()["image_size"], "target": column, **scores}
            (folder / "ensemble.json").write_text(json.dumps(info, indent=1))
            write_predictions(folder / "predictions.csv", {s: combine(ages[s], member_weights) for s in EVALUATED})

        context.log.info(", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
        return artifact_output(storage, "ensemble", fingerprint, build, Ensemble, started, lambda _: {
            **{f"member_weight_{m}": round(float(w), 3) for m, w in zip(members, member_weights)},
            **{k: round(v, 2) for k, v in scores.items()},
        })

    return ensemble
