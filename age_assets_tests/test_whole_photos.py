"""Whole photos as a dataset: FG-NET's names, and image_arrays cutting each face as predict does."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from age_assets.artifacts import ImageSet, Manifest
from age_assets.datasets.fgnet import person_and_age, read_fgnet
from age_assets.datasets.utkface import split_of
from age_assets.serving.detector import FaceDetector
from age_assets.serving.face_crops import cut_faces
from age_assets.serving.photos import decode_photo
from age_assets.serving.scenes import background, make_scene
from age_assets_tests.conftest import SHARED_UTKFACE, Materialize

SHARED_FGNET = SHARED_UTKFACE.parent / "fgnet"


def test_fgnet_names_give_person_and_age() -> None:
    assert person_and_age("001A02.JPG") == (1, 2)
    assert person_and_age("012A43b.JPG") == (12, 43)
    assert person_and_age("012a43.jpg") == (12, 43)
    assert person_and_age("12A43.JPG") is None
    assert person_and_age("001A02_face.JPG") is None


def test_fgnet_folder_keeps_each_person_in_one_split(tmp_path: Path) -> None:
    images = tmp_path / "fgnet" / "images"
    images.mkdir(parents=True)
    for person in range(1, 31):
        for age in (2, 10, 31):
            Image.new("RGB", (40, 50), (age, 0, 0)).save(images / f"{person:03d}A{age:02d}.JPG")
    (images / "notes.txt").write_text("not a photo")
    (images / "holiday.jpg").write_bytes(b"")
    table, skipped = read_fgnet(tmp_path / "fgnet")
    assert len(table) == 90 and table["face_path"].isna().all()
    person = table["image_path"].map(lambda p: Path(p).name[:3])
    assert (table.groupby(person)["split"].nunique() == 1).all(), "a person's photos share one split"
    assert set(table["split"]) == {"train", "valid", "test"}
    assert sorted(Path(s.path).name for s in skipped) == ["holiday.jpg", "notes.txt"]
    assert "PPPAaa" in next(s.reason for s in skipped if s.path.endswith("holiday.jpg"))
    test_only, _ = read_fgnet(images, "test")
    assert set(test_only["split"]) == {"test"}


def _whole_photos(folder: Path, faces: int) -> list[Path]:
    """``faces`` pictures with one shared test-split face each, named as FG-NET names photos, and one
    picture without a face."""
    folder.mkdir(parents=True)
    names = sorted(p for p in SHARED_UTKFACE.iterdir() if split_of(p.name) == "test")[::301][:faces]
    rng = np.random.default_rng(3)
    paths = []
    for person, name in enumerate(names, start=1):
        face = cv2.cvtColor(cv2.imread(str(name)), cv2.COLOR_BGR2RGB)
        path = folder / f"{person:03d}A{int(name.name.split('_')[0]) % 70:02d}.JPG"
        path.write_bytes(make_scene([face], rng).jpeg)
        paths.append(path)
    empty = folder / f"{faces + 1:03d}A30.JPG"
    Image.fromarray(background(320, 240, rng)).save(empty, quality=90)
    return [*paths, empty]


@pytest.mark.shared
def test_image_arrays_cut_whole_photos_as_predict_does(
        materialize: Materialize, utkface_dir: Path, tmp_path: Path) -> None:
    *photos, empty = _whole_photos(tmp_path / "photos", 4)
    env = {"AGE_ASSETS_DATASET": f"utkface:{utkface_dir}", "AGE_ASSETS_TEST_DATASET": f"fgnet:{tmp_path / 'photos'}"}
    config = {"ops": {"image_arrays": {"config": {"image_size": 64, "max_skipped_share": 0.05}}}}
    result = materialize(env, "raw_dataset,image_arrays", config)
    manifest: Manifest = result.output_for_node("raw_dataset")
    assert (manifest.table()["split"] == "test").sum() == 5
    arrays: ImageSet = result.output_for_node("image_arrays")
    labels = arrays.labels("test")
    assert sorted(labels["image_path"]) == sorted(map(str, photos)), "the photo without a face is left out"
    detector = FaceDetector()
    for row, path in enumerate(labels["image_path"]):
        found = cut_faces(decode_photo(Path(path).read_bytes(), path), detector, 64)
        assert len(found) == 1
        assert np.array_equal(arrays.images("test")[row], found[0][1]), "the crop predict would cut"
    skipped = result.asset_materializations_for_node("image_arrays")[0].metadata["skipped"].value
    assert skipped == 1
    assert (arrays.folder / "skipped.csv").read_text().count("no face found") == 1

    strict = {"ops": {"image_arrays": {"config": {"image_size": 64, "max_skipped_share": 0.005}}}}
    failed = materialize(env, "image_arrays", strict, raise_on_error=False)
    assert not failed.success
    message = str(failed.get_step_failure_events()[0].event_specific_data.error)
    assert f"{empty}: no face found" in message and "allowed share 0.5%" in message


@pytest.mark.shared
def test_shared_fgnet_lists_every_photo_once() -> None:
    table, skipped = read_fgnet(SHARED_FGNET, "test")
    assert len(table) == 495 and not skipped
    assert table["image_path"].map(lambda p: Path(p).name[:3]).nunique() == 41
    assert table["real_age"].between(0, 69).all()
