"""A few hundred real UTKFace faces from ../shared through the dataset assets."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from age_assets.artifacts import ImageSet
from age_assets.datasets.utkface import age_from_name
from age_assets.ml.images import load_rgb
from age_assets_tests.conftest import SHARED_UTKFACE, Materialize

pytestmark = [
    pytest.mark.shared,
    pytest.mark.skipif(not SHARED_UTKFACE.is_dir(), reason=f"{SHARED_UTKFACE} is not here"),
]


@pytest.fixture(scope="module")
def real_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every 70th shared face (about 300, all ages), copied including its irregular names."""
    folder = tmp_path_factory.mktemp("utkface")
    names = sorted(p.name for p in SHARED_UTKFACE.iterdir())
    for name in names[::70] + [n for n in names if " " in n or n.count("_") < 3]:
        shutil.copy(SHARED_UTKFACE / name, folder / name)
    return folder


def test_real_faces_become_aligned_arrays(materialize: Materialize, real_faces: Path) -> None:
    config = {"ops": {"image_arrays": {"config": {"image_size": 64}}}}
    result = materialize({"AGE_ASSETS_DATASET": f"utkface:{real_faces}"}, "raw_dataset,image_arrays", config)
    files = sorted(real_faces.iterdir())
    table = result.output_for_node("raw_dataset").table()
    assert len(table) == len(files)
    assert result.asset_materializations_for_node("raw_dataset")[0].metadata["skipped"].value == 0
    arrays: ImageSet = result.output_for_node("image_arrays")
    total = 0
    for split in arrays.splits:
        stack, labels = arrays.images(split), arrays.labels(split)
        total += len(stack)
        assert stack.shape[1:] == (64, 64, 3) and stack.dtype == np.uint8
        expected = [age_from_name(Path(p).name) for p in labels["face_path"]]
        assert labels["real_age"].tolist() == expected
        assert (stack.reshape(len(stack), -1).std(axis=1) > 10).all(), "every row holds a picture"
    assert total == len(files)
    # a row is the picture of its own file: compare against a fresh decode of a few
    labels = arrays.labels("train")
    for row in (0, len(labels) // 2, len(labels) - 1):
        assert np.array_equal(arrays.images("train")[row], load_rgb(labels.at[row, "face_path"], 64))
