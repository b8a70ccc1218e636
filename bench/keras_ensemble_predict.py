"""The baseline that `bench/predict_speed.py` measures against: ages of face crops from the stored
ensemble through Keras and TensorFlow (each member's `.keras` model, mirror averaging, a classifier's
median age, member weights), as `age-assets predict` computed them before the exported model existed.

Usage: python bench/keras_ensemble_predict.py ENSEMBLE_FOLDER IMAGE... > ages.csv
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from age_assets.ml.backbones import get_backbone
from age_assets.ml.estimator import predict_images
from age_assets.ml.export import age_and_buckets
from age_assets.ml.images import load_rgb


def main(folder: Path, paths: list[str], batch: int = 64) -> None:
    import keras

    info = json.loads((folder / "ensemble.json").read_text())
    members = [(get_backbone(m["backbone"]).preprocess_input, keras.models.load_model(folder / m["model"]),
                bool(m.get("mirror_average", False)), m["weight"]) for m in info["members"]]
    print("path,age")
    for start in range(0, len(paths), batch):
        names = paths[start:start + batch]
        images = np.stack([load_rgb(p, info["image_size"]) for p in names])
        ages = sum(w * keras.ops.convert_to_numpy(age_and_buckets(predict_images(model, preprocess, images, mirror))[0])
                   for preprocess, model, mirror, w in members)
        print("\n".join(f"{p},{a:.1f}" for p, a in zip(names, ages)))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2:])
