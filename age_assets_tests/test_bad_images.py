"""Every kind of awkward image file either loads correctly or is skipped with its path and reason."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from age_assets.artifacts import ImageSet
from age_assets.datasets.manifest import Skip
from age_assets.ml.images import try_load_rgb
from age_assets_tests.conftest import Materialize, synthetic_face, write_utkface

SIZE = 32


def _jpeg(image: Image.Image, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def _rotated_jpeg() -> bytes:
    """Stored 64 wide and 32 high, red left and blue right, with EXIF orientation 6 (rotate 90°
    clockwise to view): upright, it is 32 wide and 64 high with red on top."""
    pixels = np.zeros((32, 64, 3), dtype=np.uint8)
    pixels[:, :32] = (255, 0, 0)
    pixels[:, 32:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6
    return _jpeg(Image.fromarray(pixels), exif=exif)


def _gradient16() -> bytes:
    values = np.tile(np.linspace(0, 65535, 64), (64, 1)).astype(np.uint16)
    return _png(Image.fromarray(values))


def _bomb() -> bytes:
    """A 20000 x 10000 bilevel PNG: a few kB on disk, 200 megapixels decoded, over PIL's limit."""
    return _png(Image.new("1", (20000, 10000)))


def _expect_mean(rgb: tuple[float, float, float], tolerance: float = 12) -> Callable[[np.ndarray], None]:
    def check(pixels: np.ndarray) -> None:
        assert np.abs(pixels.reshape(-1, 3).mean(axis=0) - rgb).max() < tolerance

    return check


def _expect_upright(pixels: np.ndarray) -> None:
    top, bottom = pixels[: SIZE // 2 - 2].reshape(-1, 3).mean(0), pixels[SIZE // 2 + 2:].reshape(-1, 3).mean(0)
    assert top[0] > 200 and top[2] < 60 and bottom[2] > 200 and bottom[0] < 60


def _expect_gradient(pixels: np.ndarray) -> None:
    row = pixels[SIZE // 2, :, 0].astype(float)
    assert np.all(pixels[..., 0] == pixels[..., 1]) and np.all(pixels[..., 1] == pixels[..., 2])
    assert row[0] < 10 and row[-1] > 245 and np.all(np.diff(row) >= 0)
    assert abs(row[SIZE // 2] - 128) < 16, "16-bit values were clipped, not scaled"


LOADS: dict[str, tuple[Callable[[], bytes], Callable[[np.ndarray], None]]] = {
    "png named .jpg": (lambda: _png(Image.new("RGB", (40, 40), (200, 100, 50))), _expect_mean((200, 100, 50))),
    "greyscale": (lambda: _jpeg(Image.new("L", (40, 40), 90)), _expect_mean((90, 90, 90))),
    "cmyk": (lambda: _jpeg(Image.new("CMYK", (40, 40), (0, 255, 255, 0))), _expect_mean((255, 0, 0), 30)),
    "rgba": (lambda: _png(Image.new("RGBA", (40, 40), (10, 200, 30, 128))), _expect_mean((10, 200, 30))),
    "16-bit greyscale": (_gradient16, _expect_gradient),
    "exif rotated": (_rotated_jpeg, _expect_upright),
}

SKIPS: dict[str, tuple[Callable[[], bytes], str]] = {
    "zero bytes": (lambda: b"", "cannot be read as an image"),
    "truncated": (lambda: _jpeg(synthetic_face(30, size=64))[:700], "truncated"),
    "not an image": (lambda: b"age,name\n30,someone\n", "cannot identify image file"),
    "far too large": (_bomb, "decompression bomb"),
}


@pytest.mark.parametrize("case", LOADS)
def test_awkward_but_valid_images_load_correctly(tmp_path: Path, case: str) -> None:
    make, check = LOADS[case]
    path = tmp_path / "30_1_0_image.jpg"
    path.write_bytes(make())
    pixels = try_load_rgb(str(path), SIZE)
    assert not isinstance(pixels, Skip), pixels
    assert pixels.shape == (SIZE, SIZE, 3) and pixels.dtype == np.uint8
    check(pixels)


@pytest.mark.parametrize("case", SKIPS)
def test_unreadable_images_are_skipped_with_path_and_reason(tmp_path: Path, case: str) -> None:
    make, reason = SKIPS[case]
    path = tmp_path / "30_1_0_image.jpg"
    path.write_bytes(make())
    result = try_load_rgb(str(path), SIZE)
    assert isinstance(result, Skip)
    assert result.path == str(path) and reason in result.reason.lower()


def test_a_folder_of_every_case_lists_exactly_the_unreadable_ones(materialize: Materialize, tmp_path: Path) -> None:
    folder = tmp_path / "faces"
    write_utkface(folder, n=60)
    expected_ok = {}
    for i, (case, (make, _)) in enumerate(LOADS.items()):
        name = f"{20 + i}_0_0_{case.replace(' ', '_')}.jpg"
        (folder / name).write_bytes(make())
        expected_ok[name] = 20 + i
    odd = "33_1_2_ jöhn dœ 様.jpg"
    synthetic_face(33).save(folder / odd)
    expected_ok[odd] = 33
    bad = set()
    for i, (case, (make, _)) in enumerate(SKIPS.items()):
        name = f"{40 + i}_0_0_{case.replace(' ', '_')}.jpg"
        (folder / name).write_bytes(make())
        bad.add(name)
    env = {"AGE_ASSETS_DATASET": f"utkface:{folder}"}
    config = {"ops": {"image_arrays": {"config": {"image_size": SIZE, "max_skipped_share": 0.2}}}}
    result = materialize(env, "raw_dataset,image_arrays", config)
    arrays: ImageSet = result.output_for_node("image_arrays")
    skipped = pd.read_csv(arrays.folder / "skipped.csv")
    assert sorted(Path(p).name for p in skipped["path"]) == sorted(bad)
    assert skipped["reason"].str.len().gt(10).all()
    listing = result.asset_materializations_for_node("image_arrays")[0].metadata["skipped_files"].value
    assert all(name in listing for name in bad)
    labels = pd.concat([arrays.labels(s) for s in arrays.splits])
    kept = set(labels["face_path"].map(lambda p: Path(p).name))
    assert set(expected_ok) <= kept and not bad & kept
    assert len(labels) == 60 + len(expected_ok)
    strict = {"ops": {"image_arrays": {"config": {"image_size": SIZE, "max_skipped_share": 0.01}}}}
    failed = materialize(env, "raw_dataset,image_arrays", strict, raise_on_error=False)
    assert not failed.success
    message = failed.get_step_failure_events()[0].step_failure_data.error.message
    assert all(name in message for name in bad)


def test_plain_jpegs_skip_pillow_and_decode_as_pillow_does_at_full_quality(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    face = synthetic_face(40, 96, seed=3)
    expected = {}
    for name, image in (("colour.jpg", face), ("grey.jpg", face.convert("L"))):
        (tmp_path / name).write_bytes(_jpeg(image))
        with Image.open(tmp_path / name) as stored:
            expected[name] = cv2.resize(np.asarray(stored.convert("RGB")), (80, 80), interpolation=cv2.INTER_AREA)

    def no_pillow(*args: object, **kwargs: object) -> None:
        raise AssertionError("Pillow was asked to open a plain JPEG")

    monkeypatch.setattr("age_assets.ml.images.Image.open", no_pillow)
    for name, pixels in expected.items():
        assert np.array_equal(try_load_rgb(str(tmp_path / name), 80), pixels), name


def test_a_jpeg_over_the_decompression_bomb_limit_is_still_refused(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "large.jpg").write_bytes(_jpeg(synthetic_face(40, 96, seed=4)))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 96 * 96 // 4)
    result = try_load_rgb(str(tmp_path / "large.jpg"), 32)
    assert isinstance(result, Skip) and "decompression bomb" in result.reason
