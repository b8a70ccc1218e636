"""One self-contained age estimator from everything the graph trained, exported for any runtime.

The inference model takes uint8 RGB face crops ``[N, H, W, 3]`` and returns ``age`` ``[N]`` (years)
and ``buckets`` ``[N, 7]`` (probabilities). Inside: a bilinear resize to the training size (the
identity for crops already at that size), each member's input scaling, mirror averaging, the
regressors' fitted member weights, the classifiers' averaged probabilities and, where it exists,
the bucket ensemble's stacker written out in Keras operations. Nothing outside the file is needed.

Keras 3.15's own ``model.export`` traces nested models in training mode for SavedModel and ONNX
(BatchNormalization then uses batch statistics: ages off by years, no error). Every format here is
therefore written from one function that calls the model with ``training=False``, and the export
check compares each file with the Keras model.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers, ops
from sklearn.pipeline import Pipeline

from age_assets.export_files import DESCRIPTION
from age_assets.ml.age_distribution import BUCKET_SUMS, YEARS, median_age
from age_assets.ml.buckets import BUCKET_LABELS
from age_assets.ml.models import Cut, cut_at_frozen_boundary

INPUT_NAME = "faces"
FORMATS = {"saved_model": "saved_model", "litert": "age_estimator.tflite", "onnx": "age_estimator.onnx"}
"""Export format -> file or folder name inside the export folder."""
ONNX_OPSET = 17


@dataclass(frozen=True, kw_only=True)
class Member:
    """A stored Keras model with the input scaling of its backbone (``x * scale + offset``) and its
    roles: its age times ``age_weight`` adds to the age (0: not an ensemble member); with
    ``buckets`` its bucket probabilities join the classifiers' average.

    A regressor outputs years; a classifier bucket probabilities, or a distribution over every year,
    which gives both bucket probabilities and (its median) an age.
    """

    model: keras.Model
    scale: float
    offset: float
    mirror_average: bool
    age_weight: float = 0.0
    buckets: bool = False


def load_member(path: Path, **details: Any) -> Member:
    """A member for inference: the stored model without its optimizer or custom loss."""
    return Member(model=keras.models.load_model(path, compile=False), **details)


class _SharedFronts:
    """Members' outputs, running each distinct frozen front once.

    A regressor and a classifier of one backbone start with the same frozen ImageNet layers up to
    their cut (the whole backbone where only the heads trained); the exported model computes
    those layers once for both, which halves its cost per face for such pairs.
    """

    def __init__(self, pixels: object, mirrored: object | None) -> None:
        self.pixels, self.mirrored = pixels, mirrored
        self.fronts: list[tuple[tuple, keras.Model, object]] = []  # (what feeds it, front, its outputs)

    def _input(self, member: Member) -> object:
        both = self.mirrored is not None and member.mirror_average
        pixels = ops.concatenate([self.pixels, self.mirrored], axis=0) if both else self.pixels
        return layers.Rescaling(member.scale, member.offset)(pixels)

    def _front_outputs(self, cut: Cut, member: Member) -> object:
        assert cut.front is not None  # __call__ asks only where the member has a front
        key = (tuple(cut.boundary), member.scale, member.offset, member.mirror_average)
        for other_key, front, outputs in self.fronts:
            if other_key == key and _same_weights(front, cut.front):
                return outputs
        outputs = cut.front(self._input(member))
        self.fronts.append((key, cut.front, outputs))
        return outputs

    def __call__(self, member: Member) -> Any:  # a Keras tensor
        cut = cut_at_frozen_boundary(member.model)
        out = cut.tail(self._front_outputs(cut, member)) if cut.front is not None else \
            member.model(self._input(member))
        if self.mirrored is None or not member.mirror_average:
            return out
        return ops.mean(ops.reshape(out, (2, -1, out.shape[-1])), axis=0)


def _same_weights(a: keras.Model, b: keras.Model) -> bool:
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(wa, wb))


def _bspline_basis(x: object, knots: np.ndarray, degree: int) -> object:
    """Every B-spline basis function of ``knots`` at ``x`` [N, 1], by the Cox-de Boor recursion.

    ``x`` is clipped into the base interval first, which is scikit-learn's ``extrapolation='constant'``.
    Everything stays float32: LiteRT has no float64 kernels.
    """
    knots = knots.astype(np.float32)
    low, high = knots[degree], knots[-degree - 1]
    x = ops.clip(x, low, high - 1e-6 * (high - low))
    basis = ops.cast(ops.logical_and(x >= knots[:-1], x < knots[1:]), "float32")
    for d in range(1, degree + 1):
        left, right = knots[:-d - 1], knots[d + 1:]

        def inverse(span: np.ndarray) -> np.ndarray:
            return np.divide(1.0, span, out=np.zeros_like(span), where=span > 0).astype(np.float32)

        rise = (x - left) * inverse(knots[d:-1] - left)
        fall = (x - right) * -inverse(right - knots[1:-d])  # x first: NumPy must not try to convert x
        basis = rise * basis[:, :-1] + fall * basis[:, 1:]
    return basis


def _stacked_buckets(stacker: Pipeline, age: object, probabilities: object) -> object:
    """``bucket_ensemble``'s stacker (a spline of the age beside the log of the classifiers' mean
    probabilities, then a logistic regression) as Keras operations; [N, 7] over every bucket."""
    spline = stacker[0].named_transformers_["age"]
    regression = stacker[-1]
    bspline = spline.bsplines_[0]
    features = ops.concatenate([_bspline_basis(ops.reshape(age, (-1, 1)), bspline.t.astype(np.float32),
                                               bspline.k),
                                ops.log(ops.clip(probabilities, 1e-6, 1.0))], axis=1)
    logits = ops.matmul(features, regression.coef_.T.astype(np.float32)) + regression.intercept_.astype(np.float32)
    if regression.coef_.shape[0] == 1:  # two classes: scikit-learn's binary logistic regression
        logits = ops.concatenate([ops.zeros_like(logits), logits], axis=1)
    known = ops.softmax(logits, axis=-1)
    scatter = np.eye(len(BUCKET_LABELS), dtype=np.float32)[regression.classes_]
    return ops.matmul(known, scatter)


def age_and_buckets(output: Any) -> tuple[Any, Any]:
    """A member's output as (age [N], bucket probabilities [N, 7]), either None where it has none."""
    width = output.shape[-1]
    if width == 1:
        return ops.reshape(output, (-1,)), None
    if width == YEARS:
        return median_age(output), ops.matmul(output, BUCKET_SUMS)  # NumPy, not a tensor: a constant of every trace
    return None, output


def inference_model(image_size: int, members: Sequence[Member], stacker: Pipeline | None = None) -> keras.Model:
    """uint8 crops of any size in; ``{"age": [N], "buckets": [N, 7]}`` out."""
    for i, member in enumerate(members):
        member.model.name = f"member_{i}_{member.model.name}"  # unique, whichever backbones repeat
    faces = keras.Input((None, None, 3), dtype="uint8", name=INPUT_NAME)
    pixels = layers.Resizing(image_size, image_size, interpolation="bilinear", name="resize")(
        ops.cast(faces, "float32"))
    mirrored = ops.flip(pixels, axis=2) if any(m.mirror_average for m in members) else None
    outputs = _SharedFronts(pixels, mirrored)
    ages, probabilities = [], []
    for member in members:
        if not member.age_weight and not member.buckets:
            continue
        age, buckets = age_and_buckets(outputs(member))
        if member.age_weight:
            if age is None:
                raise ValueError(f"{member.model.name} gives no age, yet has an ensemble weight")
            ages.append(age * float(member.age_weight))
        if member.buckets:
            if buckets is None:
                raise ValueError(f"{member.model.name} gives no bucket probabilities")
            probabilities.append(buckets)
    age = ops.sum(ops.stack(ages, axis=1), axis=1)
    averaged = ops.mean(ops.stack(probabilities), axis=0)
    buckets = _stacked_buckets(stacker, age, averaged) if stacker is not None else averaged
    return keras.Model(faces, {"age": age, "buckets": buckets}, name="age_estimator")


def export_all(model: keras.Model, folder: Path, image_size: int, **details: object) -> dict[str, Path]:
    """SavedModel (TF Serving), LiteRT flatbuffer and ONNX of ``model``, all traced in inference mode,
    and ``export.json`` describing them (with ``details`` added) for the runtimes."""
    import tensorflow as tf
    import tf2onnx
    from keras.src.export.tf2onnx_lib import patch_tf2onnx

    signature = [tf.TensorSpec((None, None, None, 3), tf.uint8, name=INPUT_NAME)]

    @tf.function(input_signature=signature)
    def serve(faces: tf.Tensor) -> dict[str, tf.Tensor]:
        return model(faces, training=False)

    paths = {name: folder / file for name, file in FORMATS.items()}
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", serve)
    archive.write_out(str(paths["saved_model"]), verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(paths["saved_model"]))
    paths["litert"].write_bytes(converter.convert())
    patch_tf2onnx()  # tf2onnx 1.17 still uses NumPy aliases that NumPy 2 removed; Keras ships the patch
    tf2onnx.convert.from_function(serve, signature, opset=ONNX_OPSET, output_path=str(paths["onnx"]))
    description = {"image_size": image_size, "input": f"{INPUT_NAME}: uint8 [N, H, W, 3] RGB face crops",
                   "outputs": {"age": "[N] years", "buckets": "[N, 7] probabilities"},
                   "bucket_labels": list(BUCKET_LABELS), "files": FORMATS, **details}
    (folder / DESCRIPTION).write_text(json.dumps(description, indent=1))
    return paths
