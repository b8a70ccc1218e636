"""Age predictions from a stored ensemble folder (``ensemble.json`` and its member models)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from age_assets.ml.backbones import get_backbone
from age_assets.ml.ensemble import combine
from age_assets.ml.estimator import predict_images


class ModelLoadError(RuntimeError):
    """A stored model could not be read; the message names the file."""


def load_model(path: Path) -> keras.Model:
    if not path.is_file():
        raise ModelLoadError(f"{path}: model file is missing")
    try:
        return keras.models.load_model(path)
    except Exception as error:  # keras raises many types for damaged archives
        raise ModelLoadError(f"{path}: cannot be loaded as a Keras model ({type(error).__name__}: {error})") from error


class EnsemblePredictor:
    """Loads an ensemble folder once; ``predict`` takes uint8 images at the ensemble's image size."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        info_path = self.folder / "ensemble.json"
        if not info_path.is_file():
            raise ModelLoadError(f"{info_path}: no ensemble description here")
        self.info = json.loads(info_path.read_text())
        self.image_size: int = self.info["image_size"]
        self.members = [(get_backbone(m["backbone"]).preprocess_input, load_model(self.folder / m["model"]),
                         bool(m.get("mirror_average", False))) for m in self.info["members"]]
        self.weights = np.array([m["weight"] for m in self.info["members"]])

    def predict(self, images: np.ndarray, batch: int = 64) -> np.ndarray:
        columns = []
        for preprocess, model, mirror_average in self.members:
            outputs = [predict_images(model, preprocess, images[i:i + batch], mirror_average)
                       for i in range(0, len(images), batch)]
            columns.append(np.concatenate(outputs).reshape(-1))
        return combine(np.column_stack(columns), self.weights)
