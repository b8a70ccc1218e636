"""The face-domain MobileNet in Keras against its stored TensorFlow.js graph, run op by op with
TensorFlow, and the weights reader under it."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from age_assets.datasets.utkface import read_utkface
from age_assets.ml.backbones import WeightsUnavailable, build_backbone, get_backbone
from age_assets.ml.face_mobilenet import CAFFE_MEANS_BGR, PUBLISHED, FaceMobileNet, published_weights_file
from age_assets.ml.images import load_rgb
from age_assets.ml.tfjs_weights import TfjsModelError, read_model_json, read_weights
from age_assets.ml.weights import weights_identity, weights_source

pytestmark = pytest.mark.shared
SHARED_WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights"
FACERES = SHARED_WEIGHTS / "hse_faceres"
UTKFACE = Path(__file__).resolve().parents[2] / "shared" / "data" / "utkface"


def _attr(node: dict, key: str) -> list[int] | str:
    value = node["attr"][key]
    return [int(i) for i in value["list"]["i"]] if "list" in value else base64.b64decode(value["s"]).decode()


def run_graph(model_json: Path, images: np.ndarray) -> dict[str, np.ndarray]:
    """The stored graph itself, node by node with TensorFlow ops: every output by node name."""
    weights = read_weights(model_json)
    values: dict[str, tf.Tensor] = {}
    ops: dict[str, Callable[..., tf.Tensor]] = {
        "Add": tf.add, "Mul": tf.multiply, "Relu": tf.nn.relu, "Minimum": tf.minimum, "Maximum": tf.maximum,
        "Sigmoid": tf.sigmoid, "Softmax": tf.nn.softmax,
    }
    for node in read_model_json(model_json)["modelTopology"]["node"]:
        name, op, args = node["name"], node["op"], [values[i] for i in node.get("input", [])]
        if op == "Const":
            values[name] = tf.constant(weights[name])
        elif op == "Placeholder":
            values[name] = tf.constant(images)
        elif op == "Conv2D":
            values[name] = tf.nn.conv2d(*args, strides=_attr(node, "strides"), padding=_attr(node, "padding"))
        elif op == "DepthwiseConv2dNative":
            values[name] = tf.nn.depthwise_conv2d(*args, strides=_attr(node, "strides"),
                                                  padding=_attr(node, "padding"))
        elif op == "Mean":
            values[name] = tf.reduce_mean(args[0], axis=args[1])
        elif op == "_FusedMatMul":
            fused = [base64.b64decode(s).decode() for s in node["attr"]["fused_ops"]["list"]["s"]]
            out = tf.nn.bias_add(tf.matmul(args[0], args[1]), args[2])
            values[name] = tf.nn.relu(out) if "Relu" in fused else out
        else:
            values[name] = ops[op](*args)
    return {k: v.numpy() for k, v in values.items()}


def caffe(pixels: np.ndarray) -> np.ndarray:
    return pixels[..., ::-1] - np.array(CAFFE_MEANS_BGR, np.float32)


@pytest.fixture(scope="module")
def faces() -> tuple[np.ndarray, np.ndarray]:
    """48 validation-split faces at 224 px, RGB 0-255, and their ages."""
    table, _ = read_utkface(UTKFACE)
    valid = table[table["split"] == "valid"].sample(48, random_state=1)
    return np.stack([load_rgb(p, 224) for p in valid["face_path"]]).astype(np.float32), valid["real_age"].to_numpy()


@pytest.mark.slow
@pytest.mark.parametrize("checkpoint", sorted(PUBLISHED))
def test_keras_model_gives_the_stored_graphs_features_and_age_softmax(
        checkpoint: str, faces: tuple[np.ndarray, np.ndarray]) -> None:
    pixels = faces[0][:6]
    reference = run_graph(FACERES / f"{checkpoint}.json", caffe(pixels))
    model = FaceMobileNet(weights=str(FACERES / f"{checkpoint}.json"))
    ages, gender = model.predict(pixels, verbose=0)
    np.testing.assert_allclose(ages, reference["age_pred/Softmax"], atol=1e-4)
    np.testing.assert_allclose(gender, reference["gender_pred/Sigmoid"], atol=1e-4)
    backbone = build_backbone("mobilenet_v1_faces", 224, str(FACERES / f"{checkpoint}.json"))
    pooled = backbone.predict(pixels, verbose=0).mean(axis=(1, 2))
    np.testing.assert_allclose(pooled, reference["global_pooling/Mean"], atol=1e-4)


@pytest.mark.slow
def test_the_weights_want_bgr_pixels_less_the_imagenet_means(faces: tuple[np.ndarray, np.ndarray]) -> None:
    """The age head's error on real faces under each candidate input scaling: Caffe's (BGR, less the
    ImageNet means) is far better than [0, 1] or [-1, 1], and better than the same in RGB order."""
    pixels, ages = faces
    errors = {}
    for scaling, x in {"caffe": caffe(pixels), "unit": pixels / 255, "symmetric": pixels / 127.5 - 1,
                       "rgb_less_means": pixels - np.array(CAFFE_MEANS_BGR[::-1], np.float32)}.items():
        softmax = run_graph(FACERES / "faceres-deep.json", x)["age_pred/Softmax"]
        errors[scaling] = float(np.abs(softmax @ np.arange(100) - ages).mean())
    assert errors["caffe"] < 7, errors
    assert errors["caffe"] < 0.5 * min(errors["unit"], errors["symmetric"]), errors
    assert errors["caffe"] < 0.9 * errors["rgb_less_means"], errors  # the channel order matters too


def test_backbone_table_finds_the_published_files_in_the_weights_folder(tmp_path: Path) -> None:
    source = weights_source("mobilenet_v1_faces", SHARED_WEIGHTS)
    assert Path(source) == FACERES / "faceres-deep.json"
    assert get_backbone("mobilenet_v1_faces").feature_width == 1024
    copy = tmp_path / "hse_faceres"
    shutil.copytree(FACERES, copy)
    assert weights_identity(str(copy / "faceres-deep.json")) == weights_identity(source)
    (copy / "faceres-deep.bin").write_bytes((copy / "faceres-deep.bin").read_bytes()[:-4] + b"\0\0\0\0")
    assert weights_identity(str(copy / "faceres-deep.json")) != weights_identity(source)


def test_truncated_or_missing_weights_name_the_file(tmp_path: Path) -> None:
    shutil.copy(FACERES / "faceres.json", tmp_path / "faceres.json")
    with pytest.raises(TfjsModelError, match=r"faceres\.bin: missing"):
        read_weights(tmp_path / "faceres.json")
    (tmp_path / "faceres.bin").write_bytes((FACERES / "faceres.bin").read_bytes()[:1000])
    with pytest.raises(TfjsModelError, match=r"faceres\.bin: 1,000 bytes where faceres\.json describes"):
        read_weights(tmp_path / "faceres.json")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(TfjsModelError, match=r"broken\.json: not a TensorFlow\.js model\.json"):
        FaceMobileNet(weights=str(tmp_path / "broken.json"))


def test_float16_weights_are_read_as_the_floats_they_store(tmp_path: Path) -> None:
    values = np.array([[0.5, -2.0, 1e-3]], np.float32)
    manifest = [{"paths": ["w.bin"], "weights": [
        {"name": "a", "shape": [1, 3], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "b", "shape": [2], "dtype": "int32"}]}]
    (tmp_path / "m.json").write_text(json.dumps({"modelTopology": {}, "weightsManifest": manifest}))
    (tmp_path / "w.bin").write_bytes(values.astype(np.float16).tobytes() + np.array([7, -1], np.int32).tobytes())
    weights = read_weights(tmp_path / "m.json")
    np.testing.assert_array_equal(weights["a"], values.astype(np.float16).astype(np.float32))
    assert weights["b"].tolist() == [7, -1]


def test_a_graph_of_another_model_is_refused(tmp_path: Path) -> None:
    model = read_model_json(FACERES / "faceres-deep.json")
    model["weightsManifest"][0]["weights"][0]["name"] = "other/kernel"
    (tmp_path / "faceres-deep.json").write_text(json.dumps(model))
    shutil.copy(FACERES / "faceres-deep.bin", tmp_path / "faceres-deep.bin")
    with pytest.raises(TfjsModelError, match="no weight age_pred/kernel"):
        FaceMobileNet(weights=str(tmp_path / "faceres-deep.json"))


def test_failed_download_says_where_to_put_the_files(monkeypatch: pytest.MonkeyPatch) -> None:
    import keras

    def offline(*args: object, **kwargs: object) -> str:
        raise Exception("URL fetch failure: no internet")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(WeightsUnavailable, match=r"AGE_ASSETS_WEIGHTS_DIR.*hse_faceres/faceres-deep\.json"):
        published_weights_file()


def test_a_published_head_starts_as_the_published_age_head(faces: tuple[np.ndarray, np.ndarray]) -> None:
    """Built with ``published``, a regressor's first ages are the published softmax's expected ages and
    a classifier over years gives the published softmax (year 100 nearly impossible); a classifier
    over buckets cannot hold it."""
    from age_assets.ml.models import build_model
    from age_assets.ml.specs import HeadSpec

    weights, pixels = str(FACERES / "faceres-deep.json"), faces[0][:8]
    published = FaceMobileNet(weights=weights).predict(pixels, verbose=0)[0]
    head = HeadSpec(published=True, dropout=0.5)
    regressor = build_model("mobilenet_v1_faces", 224, weights, head, train_last=13)
    np.testing.assert_allclose(regressor.predict(pixels, verbose=0)[:, 0], published @ np.arange(100), atol=1e-3)
    classifier = build_model("mobilenet_v1_faces", 224, weights, head, train_last=13, classes=101)
    over_years = classifier.predict(pixels, verbose=0)
    np.testing.assert_allclose(over_years[:, :100], published, atol=1e-5)
    assert over_years[:, 100].max() < 1e-3
    with pytest.raises(ValueError, match="not 7 classes"):
        build_model("mobilenet_v1_faces", 224, weights, head, train_last=13, classes=7)
    with pytest.raises(ValueError, match="mobilenet_v3_small has no published age head"):
        build_model("mobilenet_v3_small", 32, None, head, train_last=0)
