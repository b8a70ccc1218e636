"""The model half of the graph: one regressor and one bucket classifier per backbone, an ensemble."""

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import dagster as dg
import numpy as np
import pandas as pd
from pydantic import Field

from age_assets.artifacts import Ensemble, ImageSet, TrainedModel, write_predictions
from age_assets.assets.metadata import peak_rss_mb, png
from age_assets.assets.versioning import VersionedConfig, code_version, data_version
from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.ml.ensemble import combine, fit_weights
from age_assets.ml.evaluation import classifier_metrics
from age_assets.ml.metrics import mae
from age_assets.plots import learning_curves
from age_assets.resources import Accelerator, BackboneWeights, Storage
from age_assets.storage import build_once

if TYPE_CHECKING:  # Keras loads in the step that trains, not with the code location
    from age_assets.ml.estimator import Stack
    from age_assets.ml.training import FitSpec

GROUP = "models"
TRAINING_POOL = "gpu"
"""Training steps share this concurrency pool; the instance limits it to one (dagster.yaml)."""
ONE_GPU_ON_KUBERNETES = {"dagster-k8s/config": {"container_config": {"resources": {"limits": {"nvidia.com/gpu": "1"}}}}}
"""Under dagster-k8s' step executor each training step's pod asks for one GPU; other executors
ignore this tag."""
EVALUATED = ("valid", "test")


class TrainingConfig(VersionedConfig):
    train_last: int = Field(default=0, description="Backbone layers that train, counted from the top: 0 none, -1 all")
    units: int = Field(default=1024, description="Units of the head's Dense layer (0: no Dense layer)")
    activation: str = Field(default="relu", description="Activation of the head's Dense layer")
    dropout: float = Field(default=0.5, description="Dropout after the Dense layer (the study used 0.5-0.7)")
    l2: float = Field(default=0.0, description="L2 penalty on the Dense layer (the study's alternative: 0.01)")
    optimizer: Literal["adam", "adamw", "sgd"] = Field(default="adam", description="Optimizer")
    learning_rate: float = Field(default=1e-3, description="Learning rate (the study fine-tuned at 1e-5)")
    epochs: int = Field(default=60, description="Most epochs")
    patience: int = Field(default=8, description="Early stopping: epochs without a better validation score")
    batch_size: int = Field(default=64, description="Batch size")
    train_on: Literal["augmented", "plain"] = Field(
        default="augmented", description="Train on augmented_train or on the plain training split"
    )
    seed: int = Field(default=0, description="Seed of weight initialisation and shuffling")
    mirror_average: bool = Field(
        default=True, description="Predict each image and its left-right mirror image and average the two"
    )

    def fit_spec(self, loss: str) -> "FitSpec":
        from age_assets.ml.training import FitSpec

        return FitSpec(self.optimizer, self.learning_rate, loss, self.epochs, self.patience, self.batch_size, self.seed)


class ModelConfig(TrainingConfig):
    output: Literal["sigmoid", "linear"] = Field(
        default="sigmoid", description="'sigmoid' scaled to 0-100 years (the study's), or 'linear'"
    )
    loss: Literal["mse", "mae", "huber"] = Field(default="mse", description="Loss on ages in years")
    target: Literal["auto", "real", "apparent"] = Field(
        default="auto", description="Age to learn: 'auto' is apparent where the dataset has votes, else real"
    )


class ClassifierConfig(TrainingConfig):
    age_sigma: float = Field(
        default=2.0, ge=0.0,
        description="Learn a softmax over every year 0-100 from a Gaussian this many years wide around the true "
                    "age, and sum it into the buckets; 0: a softmax over the 7 buckets learned from the bucket alone",
    )


class EnsembleConfig(VersionedConfig):
    pass


MODEL_VERSION = code_version("1", ModelConfig)
CLASSIFIER_VERSION = code_version("2", ClassifierConfig)
ENSEMBLE_VERSION = code_version("2", EnsembleConfig)


def target_column(target: str, labels: pd.DataFrame) -> str:
    if target == "auto":
        return "apparent_age_mean" if labels["apparent_age_mean"].notna().all() else "real_age"
    column = f"{target}_age" if target == "real" else "apparent_age_mean"
    if labels[column].isna().any():
        raise dg.Failure(f"target '{target}' asked for, but the dataset has no {column} for every image")
    return column


def _stacks(
    images: ImageSet, train_set: ImageSet, targets: Callable[[pd.DataFrame], np.ndarray]
) -> tuple["Stack", "Stack", dict[str, "Stack"]]:
    from age_assets.ml.estimator import Stack

    def stack(source: ImageSet, split: str) -> Stack:
        return Stack(source.images_path(split), targets(source.labels(split)), f"{source.fingerprint}/{split}")

    evaluated = {split: stack(images, split) for split in EVALUATED}
    return stack(train_set, "train"), evaluated["valid"], evaluated


def _train_asset(backbone: str, classifier: bool) -> dg.AssetsDefinition:
    kind = "classifier" if classifier else "model"
    config_type: Any = ClassifierConfig if classifier else ModelConfig  # its fields differ: typed loosely
    version = CLASSIFIER_VERSION if classifier else MODEL_VERSION
    description = (f"{backbone} classifier of the 7 age buckets {', '.join(BUCKET_LABELS)}."
                   if classifier else f"{backbone} regressor of age in years, ImageNet weights, the study's head.")

    @dg.asset(
        name=f"{kind}_{backbone}",
        code_version=version,
        kinds={"keras", "tensorflow"},
        group_name=GROUP,
        pool=TRAINING_POOL,
        op_tags=ONE_GPU_ON_KUBERNETES,
        description=description,
    )
    def train(
        context: dg.AssetExecutionContext,
        config: config_type,  # type: ignore[valid-type]  # Dagster reads the config class from this annotation
        image_arrays: ImageSet,
        augmented_train: ImageSet,
        storage: Storage,
        weights: BackboneWeights,
        accelerator: Accelerator,
    ) -> dg.Output[TrainedModel]:
        started = time.perf_counter()
        train_set = augmented_train if config.train_on == "augmented" else image_arrays
        fingerprint = data_version(version, config, backbone, weights.identity(backbone), *accelerator.identity(),
                                   image_arrays.fingerprint, train_set.fingerprint)
        if classifier:
            column, loss = "real_age", "sparse_categorical_crossentropy"
            def targets(labels: pd.DataFrame) -> np.ndarray:
                ages = labels[column].to_numpy(np.float32)
                return ages if config.age_sigma else age_to_bucket(ages)
        else:
            column, loss = target_column(config.target, image_arrays.labels("train")), config.loss
            def targets(labels: pd.DataFrame) -> np.ndarray:
                return labels[column].to_numpy(np.float32)
        metric = "accuracy" if classifier else "mae"

        def build(folder: Path) -> None:
            from age_assets.ml.estimator import EstimatorSpec, train_estimator
            from age_assets.ml.models import HeadSpec

            device = accelerator.activate()
            context.log.info(f"training on {device}")
            image_size = image_arrays.images("train").shape[1]
            spec = EstimatorSpec(
                backbone, weights.source(backbone), image_size,
                HeadSpec(config.units, config.activation, config.dropout, config.l2,
                         "softmax" if classifier else config.output),
                config.train_last, config.fit_spec(loss), len(BUCKET_LABELS) if classifier else 0,
                config.mirror_average, config.age_sigma if classifier else 0.0,
            )
            train_stack, valid_stack, evaluated = _stacks(image_arrays, train_set, targets)

            def on_epoch(epoch: int, logs: dict[str, float]) -> None:
                context.log.info(f"epoch {epoch + 1}: " + ", ".join(f"{k}={v:.4g}" for k, v in logs.items()))

            trained = train_estimator(spec, train_stack, valid_stack, evaluated, storage.root / "cache" / "features",
                                      context.log.info, on_epoch)
            trained.model.save(folder / "model.keras")
            write_predictions(folder / "predictions.csv", trained.predictions)
            scores = trained.history[f"val_{metric}"]
            best = int(np.argmin(scores) if metric == "mae" else np.argmax(scores))
            info = {"backbone": backbone, "kind": kind, "image_size": image_size, "target": column,
                    "mirror_average": config.mirror_average,
                    "boundary": trained.boundary, "epochs": len(scores), "best_epoch": best + 1,
                    f"best_val_{metric}": float(scores[best]), "device": device,
                    "trainable_params": int(sum(np.prod(w.shape) for w in trained.model.trainable_weights)),
                    "train_images": len(train_stack.targets), "seconds": round(time.perf_counter() - started, 1)}
            (folder / "info.json").write_text(json.dumps(info, indent=1))
            pd.DataFrame(trained.history).to_csv(folder / "history.csv", index_label="epoch")

        folder = storage.artifact(f"{kind}_{backbone}", fingerprint)
        reused = build_once(folder, build)
        result = TrainedModel(folder, fingerprint)
        info = result.info()
        history = pd.read_csv(folder / "history.csv").to_dict(orient="list")
        extra = _classifier_metadata(result, image_arrays) if classifier else {}
        return dg.Output(result, data_version=dg.DataVersion(fingerprint), metadata={
            **extra,
            f"best_val_{metric}": info[f"best_val_{metric}"],
            **{k: info[k] for k in ("target", "epochs", "best_epoch", "device", "trainable_params", "train_images")},
            "boundary": ", ".join(info["boundary"]) or "input (no cached features)",
            "learning_curves": png(learning_curves(history, metric), "learning curves"),
            "training_seconds": info["seconds"],
            "duration_s": round(time.perf_counter() - started, 2),
            "peak_rss_mb": peak_rss_mb(),
            "reused": reused,
            "fingerprint": fingerprint,
        })

    return train


def _classifier_metadata(result: TrainedModel, image_arrays: ImageSet) -> dict[str, Any]:
    """Validation accuracy, macro-F1 and confusion matrix of a bucket classifier."""
    scores = classifier_metrics(result.predictions("valid")["bucket"].to_numpy(), image_arrays.labels("valid"))
    rows = ["| true \\ predicted | " + " | ".join(BUCKET_LABELS) + " |", "|---" * (len(BUCKET_LABELS) + 1) + "|"]
    rows += [f"| {label} | " + " | ".join(map(str, counts)) + " |"
             for label, counts in zip(BUCKET_LABELS, scores["confusion_matrix"])]
    return {"val_accuracy": scores["accuracy"], "val_macro_f1": scores["macro_f1"],
            "val_confusion_matrix": dg.MetadataValue.md("\n".join(rows))}


def model_asset(backbone: str) -> dg.AssetsDefinition:
    return _train_asset(backbone, classifier=False)


def classifier_asset(backbone: str) -> dg.AssetsDefinition:
    return _train_asset(backbone, classifier=True)


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def ensemble_asset(backbones: list[str]) -> dg.AssetsDefinition:
    members = [f"model_{b}" for b in backbones]

    @dg.asset(
        ins={name: dg.AssetIn() for name in members},
        code_version=ENSEMBLE_VERSION,
        kinds={"keras", "scikitlearn"},
        group_name=GROUP,
        description="The regressors combined with non-negative weights fitted on the validation split.",
    )
    def ensemble(
        context: dg.AssetExecutionContext, config: EnsembleConfig, image_arrays: ImageSet, storage: Storage,
        **models: TrainedModel,
    ) -> dg.Output[Ensemble]:
        started = time.perf_counter()
        fingerprint = data_version(ENSEMBLE_VERSION, config, image_arrays.fingerprint,
                                   {name: models[name].fingerprint for name in members})
        column = models[members[0]].info()["target"]
        truth = {split: image_arrays.labels(split)[column].to_numpy() for split in EVALUATED}
        preds = {split: np.column_stack([models[m].predictions(split)["age"] for m in members]) for split in EVALUATED}
        weights = fit_weights(preds["valid"], truth["valid"])
        scores = {f"val_mae_{m}": mae(preds["valid"][:, i], truth["valid"]) for i, m in enumerate(members)}
        scores["val_mae_ensemble"] = mae(combine(preds["valid"], weights), truth["valid"])
        if len(members) == 2:
            scores["val_mae_study_weights_0.6_0.4"] = mae(combine(preds["valid"], np.array([0.6, 0.4])), truth["valid"])

        def build(folder: Path) -> None:
            for m in members:
                _link_or_copy(models[m].model_path, folder / f"{m}.keras")
            info = {"members": [{"name": m, "backbone": b, "model": f"{m}.keras", "weight": float(w),
                                 "mirror_average": bool(models[m].info().get("mirror_average", False))}
                                for m, b, w in zip(members, backbones, weights)],
                    "image_size": models[members[0]].info()["image_size"], "target": column, **scores}
            (folder / "ensemble.json").write_text(json.dumps(info, indent=1))
            write_predictions(folder / "predictions.csv", {s: combine(preds[s], weights) for s in EVALUATED})

        folder = storage.artifact("ensemble", fingerprint)
        reused = build_once(folder, build)
        context.log.info(", ".join(f"{k}={v:.3f}" for k, v in scores.items()))
        return dg.Output(Ensemble(folder, fingerprint), data_version=dg.DataVersion(fingerprint), metadata={
            **{f"weight_{m}": float(w) for m, w in zip(members, weights)},
            **scores,
            "duration_s": round(time.perf_counter() - started, 2),
            "reused": reused,
            "fingerprint": fingerprint,
        })

    return ensemble
