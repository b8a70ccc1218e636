"""The augmentation pipelines on a generated stack: what each one does to a face, and that a copy's
pixels depend on its seed only."""

from pathlib import Path

import numpy as np
import pytest

from age_assets.ml.augment import augment_stack

FACTOR = 4


@pytest.fixture
def colourful(tmp_path: Path) -> Path:
    """40 images with different colours in each channel and sharp edges: 6-pixel squares of random colours."""
    rng = np.random.default_rng(0)
    squares = rng.uniform(0, 255, (40, 8, 8, 3))
    images = squares.repeat(6, axis=1).repeat(6, axis=2).astype(np.uint8)
    path = tmp_path / "train.npy"
    np.save(path, images)
    return path


def _copies(source: Path, out: Path, pipeline: str, workers: int = 2) -> np.ndarray:
    augment_stack(source, out, FACTOR, seed=3, workers=workers, block=16, pipeline=pipeline)  # type: ignore[arg-type]
    return np.load(out).reshape(-1, FACTOR, 48, 48, 3).astype(int)


def _grey(copies: np.ndarray) -> np.ndarray:
    return (np.abs(copies[..., 0] - copies[..., 1]).max(axis=(-1, -2)) <= 2) & \
        (np.abs(copies[..., 1] - copies[..., 2]).max(axis=(-1, -2)) <= 2)


def test_camera_copies_look_like_other_cameras_and_the_study_copies_do_not(colourful: Path, tmp_path: Path) -> None:
    study = _copies(colourful, tmp_path / "study.npy", "study")
    camera = _copies(colourful, tmp_path / "camera.npy", "camera")
    source = np.load(colourful).astype(int)
    assert np.array_equal(camera[:, 0], source) and np.array_equal(study[:, 0], source), "copy 0 is the original"

    assert not _grey(study[:, 1:]).any()
    grey = _grey(camera[:, 1:]).mean()
    assert 0.03 < grey < 0.25, f"greyscale should fire on a minority of the copies, got {grey:.2f}"

    # The camera steps draw after the study's from one stream, so a copy that none of the six fired on
    # (0.8 * 0.7 * 0.8 * 0.7 * 0.8 * 0.7 = 18% of them) is the study's copy itself.
    untouched = (camera[:, 1:] == study[:, 1:]).all(axis=(-1, -2, -3)).mean()
    assert 0.08 < untouched < 0.32, f"{untouched:.2f} of the camera copies are the study's copies"


def test_camera_copies_depend_on_the_seed_not_on_threads(colourful: Path, tmp_path: Path) -> None:
    one = _copies(colourful, tmp_path / "one.npy", "camera", workers=1)
    two = _copies(colourful, tmp_path / "two.npy", "camera", workers=2)
    assert np.array_equal(one, two)
