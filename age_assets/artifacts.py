"""Handles to stored artifacts: what one asset hands the next (no Dagster here).

A handle is a folder plus the fingerprint of everything that made it; arrays are opened as
memory maps on demand, so passing a handle costs nothing and reading never copies a whole split.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from age_assets.ml.buckets import BUCKET_LABELS

PROBABILITY_COLUMNS = [f"p_{label}" for label in BUCKET_LABELS]
"""Bucket probabilities in a classifier's ``predictions.csv``, beside its ``bucket``."""
@dataclass(frozen=True)
class Manifest:
    """A dataset's manifest (``manifest.csv``) and the inputs it skipped (``skipped.csv``)."""

    folder: Path
    fingerprint: str

    def table(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "manifest.csv", keep_default_na=True)


@dataclass(frozen=True)
class ImageSet:
    """Per split: ``<split>_images.npy`` (uint8 [N, S, S, 3]) and ``<split>_labels.csv`` (N rows)."""

    folder: Path
    fingerprint: str

    @property
    def splits(self) -> list[str]:
        return sorted(p.name.removesuffix("_images.npy") for p in self.folder.glob("*_images.npy"))

    def images_path(self, split: str) -> Path:
        return self.folder / f"{split}_images.npy"

    def images(self, split: str) -> np.ndarray:
        """The split's images, memory-mapped read-only."""
        return np.load(self.images_path(split), mmap_mode="r")

    def labels(self, split: str) -> pd.DataFrame:
        return pd.read_csv(self.folder / f"{split}_labels.csv")


def write_predictions(csv: Path, predictions: dict[str, np.ndarray],
                      ages: dict[str, np.ndarray] | None = None) -> None:
    """``predictions.csv``: per split and row, an ``age`` (1-D predictions) or, for [N, buckets]
    probabilities, the ``bucket`` with the highest and every bucket's probability, and then an
    ``age`` too where ``ages`` gives one (a classifier over years)."""
    tables = []
    for split, pred in predictions.items():
        table = pd.DataFrame({"split": split, "row": np.arange(len(pred))})
        if pred.ndim == 1:
            table["age"] = pred
        else:
            table["bucket"] = pred.argmax(axis=1)
            table[PROBABILITY_COLUMNS] = pred
            if ages is not None:
                table["age"] = ages[split]
        tables.append(table)
    pd.concat(tables).to_csv(csv, index=False)


def _split_rows(csv: Path, split: str) -> pd.DataFrame:
    """The rows of one split from a ``predictions.csv`` with a ``split`` column."""
    table = pd.read_csv(csv)
    return table[table["split"] == split].reset_index(drop=True)


@dataclass(frozen=True)
class TrainedModel:
    """``model.keras``, ``info.json`` (backbone, image size, target, every setting, scores),
    ``predictions.csv`` (per evaluated split and row: the predicted age, or bucket probabilities for
    a classifier, with an age too for one over years) and ``history.csv`` (per epoch, each training
    and validation figure); ``bucket_ensemble`` has no model or history."""

    folder: Path
    fingerprint: str

    @property
    def model_path(self) -> Path:
        return self.folder / "model.keras"

    def info(self) -> dict:
        return json.loads((self.folder / "info.json").read_text())

    def predictions(self, split: str) -> pd.DataFrame:
        return _split_rows(self.folder / "predictions.csv", split)

    def history(self) -> dict[str, list[float]]:
        """Per figure (``loss``, ``val_mae``, ...), its value after each epoch."""
        return pd.read_csv(self.folder / "history.csv", index_col="epoch").to_dict(orient="list")

    @property
    def predicts_age(self) -> bool:
        return "age" in pd.read_csv(self.folder / "predictions.csv", nrows=0).columns


@dataclass(frozen=True)
class Ensemble:
    """``ensemble.json`` (members, weights, image size), the member models beside it, and
    ``predictions.csv``: everything ``age-assets predict`` needs."""

    folder: Path
    fingerprint: str

    def info(self) -> dict:
        return json.loads((self.folder / "ensemble.json").read_text())

    def predictions(self, split: str) -> pd.DataFrame:
        return _split_rows(self.folder / "predictions.csv", split)


@dataclass(frozen=True)
class Export:
    """The exported age estimator: ``saved_model/``, ``age_estimator.tflite``, ``age_estimator.onnx``,
    ``export.json`` (image size, bucket labels, members) and ``valid_predictions.csv`` (the Keras
    model's own outputs on the validation split, which every export must reproduce)."""

    folder: Path
    fingerprint: str

    def info(self) -> dict:
        return json.loads((self.folder / "export.json").read_text())

    def reference(self) -> pd.DataFrame:
        return pd.read_csv(self.folder / "valid_predictions.csv")


@dataclass(frozen=True)
class Report:
    """``evaluation.json`` (every test-split figure of the graph's models) and ``evaluation.md``."""

    folder: Path
    fingerprint: str

    def report(self) -> dict:
        return json.loads((self.folder / "evaluation.json").read_text())
