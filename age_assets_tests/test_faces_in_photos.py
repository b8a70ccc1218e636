"""Finding faces in whole pictures and cropping them as UTKFace's training faces are cropped."""

import subprocess
import sys

import cv2
import numpy as np
import pytest

from age_assets.datasets.utkface import split_of
from age_assets.serving import detector as detector_module
from age_assets.serving.detector import MODELS, Face, FaceDetector, ScoreRule
from age_assets.serving.face_crops import RULE, CropRule, crop_face
from age_assets.serving.scenes import Scene, box_corners, box_iou, make_scene, polygon_iou
from age_assets_tests.conftest import SHARED_UTKFACE


@pytest.fixture(scope="module")
def faces() -> list[np.ndarray]:
    """22 test-split shared faces, spread over all ages."""
    if not SHARED_UTKFACE.is_dir():
        pytest.skip(f"{SHARED_UTKFACE} is not here")
    names = sorted(p for p in SHARED_UTKFACE.iterdir() if split_of(p.name) == "test")
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in names[::100]]


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector(threads=1)


@pytest.fixture(scope="module")
def scenes(faces: list[np.ndarray]) -> list[Scene]:
    rng = np.random.default_rng(0)
    return [make_scene([face], rng) for face in faces]


@pytest.fixture(scope="module")
def detections(detector: FaceDetector, scenes: list[Scene]) -> list[list[Face]]:
    return [detector.detect(scene.image) for scene in scenes]


@pytest.mark.shared
def test_scene_is_a_jpeg_with_faces_where_its_boxes_say(faces: list[np.ndarray]) -> None:
    scene = make_scene(faces[:3], np.random.default_rng(1))
    height, width = scene.image.shape[:2]
    assert scene.jpeg[:2] == b"\xff\xd8" and scene.image.dtype == np.uint8 and scene.image.shape[2] == 3
    assert min(width, height) >= 360 and max(width, height) <= 960
    for i, (x, y, w, h) in enumerate(scene.boxes):
        assert 0 <= x and x + w <= width and 0 <= y and y + h <= height
        assert 0.25 * min(width, height) - 1 <= w <= 0.6 * min(width, height) + 1
        pasted = cv2.resize(faces[i], (w, h), interpolation=cv2.INTER_AREA).astype(float)
        assert np.abs(scene.image[y : y + h, x : x + w] - pasted).mean() < 6  # only JPEG's loss
        for other in scene.boxes[i + 1 :]:
            assert box_iou(scene.boxes[i], other) == 0


@pytest.mark.shared
def test_finds_the_one_face_in_each_picture(scenes: list[Scene], detections: list[list[Face]]) -> None:
    for scene, found in zip(scenes, detections):
        assert len(found) == 1 and box_iou(found[0].box, scene.boxes[0]) >= 0.5
        face = found[0]
        assert 0.5 <= face.score <= 1 and face.keypoints.shape == (6, 2)
        right_eye, left_eye = face.keypoints[0], face.keypoints[1]
        assert right_eye[0] < left_eye[0]  # the person's right eye is on the picture's left


@pytest.mark.shared
def test_crop_covers_the_training_crop(scenes: list[Scene], detections: list[list[Face]]) -> None:
    """The crop is the training crop's square, 7% tighter on purpose (see face_crops): at best IoU 0.86."""
    for scene, found in zip(scenes, detections):
        corners, truth = RULE.corners(found[0]), box_corners(scene.boxes[0])
        assert polygon_iou(corners, truth) >= 0.7
        assert np.linalg.norm(corners.mean(axis=0) - truth.mean(axis=0)) <= 0.1 * scene.boxes[0][2]
    crop = crop_face(scenes[0].image, detections[0][0], 160)
    assert crop.shape == (160, 160, 3) and crop.dtype == np.uint8


def test_no_face_in_background_only_pictures(detector: FaceDetector) -> None:
    rng = np.random.default_rng(2)
    for _ in range(5):
        assert detector.detect(make_scene([], rng).image) == []


@pytest.mark.shared
def test_two_faces_in_a_two_face_picture(detector: FaceDetector, faces: list[np.ndarray]) -> None:
    rng = np.random.default_rng(3)
    for pair in (faces[4:6], faces[10:12]):
        scene = make_scene(pair, rng)
        found = detector.detect(scene.image)
        assert len(found) == 2 and found[0].score >= found[1].score
        for box in scene.boxes:
            assert max(box_iou(face.box, box) for face in found) >= 0.5


@pytest.mark.shared
def test_greyscale_pictures(detector: FaceDetector, scenes: list[Scene]) -> None:
    grey = cv2.cvtColor(scenes[1].image, cv2.COLOR_RGB2GRAY)
    for picture in (cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB), grey):
        found = detector.detect(picture)
        assert len(found) == 1 and box_iou(found[0].box, scenes[1].boxes[0]) >= 0.5


@pytest.mark.shared
@pytest.mark.parametrize("width", [96, 4000])
def test_very_small_and_very_large_pictures(detector: FaceDetector, scenes: list[Scene], width: int) -> None:
    scene = scenes[2]
    scale = width / scene.image.shape[1]
    height = round(scene.image.shape[0] * scale)
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    picture = cv2.resize(scene.image, (width, height), interpolation=interpolation)
    found = detector.detect(picture)
    assert len(found) == 1 and box_iou(found[0].box, tuple(v * scale for v in scene.boxes[0])) >= 0.5


def _face_at(centre: tuple[float, float], width: float, tilt: float = 0.0) -> Face:
    """A detection whose eyes and mouth average to ``centre``, eye line turned by ``tilt`` radians."""
    across, down = np.array([np.cos(tilt), np.sin(tilt)]), np.array([-np.sin(tilt), np.cos(tilt)])
    eyes = [np.array(centre) + width / 4 * (side * across - down / 2) for side in (-1, 1)]
    mouth = np.array(centre) + width / 4 * down
    keypoints = np.array([eyes[0], eyes[1], centre, mouth, eyes[0], eyes[1]])
    return Face((centre[0] - width / 2, centre[1] - width / 2, width, width), 0.9, keypoints)


def test_crop_face_resamples_exactly_the_rule_square() -> None:
    image = np.random.default_rng(4).integers(0, 256, (300, 400, 3), dtype=np.uint8)
    upright, level = CropRule(1.0, (0.0, 0.0), level_eyes=False), CropRule(1.0, (0.0, 0.0), level_eyes=True)
    face = _face_at((150.0, 120.0), 100)
    region = image[70:170, 100:200]
    assert np.array_equal(crop_face(image, face, 100, upright), region)
    small = cv2.resize(region, (40, 40), interpolation=cv2.INTER_AREA)
    assert np.array_equal(crop_face(image, face, 40, upright), small)
    turned = crop_face(image, _face_at((150.0, 120.0), 100, tilt=np.pi / 2), 100, level)
    assert np.abs(turned.astype(int) - np.rot90(region, k=1)).max() <= 1


def test_crop_face_repeats_the_border_outside_the_picture() -> None:
    image = np.zeros((50, 60, 3), dtype=np.uint8)
    image[0, :] = 200
    crop = crop_face(image, _face_at((30.0, 5.0), 40), 32, CropRule(1.0, (0.0, 0.0), level_eyes=False))
    assert crop.shape == (32, 32, 3)
    assert (crop[:12] == 200).all() and (crop[-10:] == 0).all()


def test_missing_model_file_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MODELS, "gone", detector_module.ModelSpec("gone.tflite", 128, (8,), 2))
    with pytest.raises(FileNotFoundError, match=r"gone\.tflite.*ships with age_assets: reinstall it"):
        FaceDetector("gone")
    with pytest.raises(ValueError, match="unknown face detection model"):
        FaceDetector("nonexistent")


def test_serving_modules_do_not_import_tensorflow() -> None:
    code = (
        "import sys, numpy as np\n"
        "from age_assets.serving import detector, face_crops, scenes\n"
        "detector.FaceDetector().detect(np.zeros((64, 64, 3), np.uint8))\n"
        "print('tensorflow' in sys.modules, 'dagster' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["False", "False"]


def _scored(*scores: float) -> list[Face]:
    return [Face((0.0, 0.0, 10.0, 10.0), score, np.zeros((6, 2))) for score in scores]


def test_score_rule_drops_weak_faces_far_under_the_best_and_keeps_a_lone_weak_one() -> None:
    rule = ScoreRule(min_score=0.5, relative=0.9, sure=0.7)
    assert [f.score for f in rule.keep(_scored(0.8, 0.75, 0.6, 0.52))] == [0.8, 0.75]
    assert [f.score for f in rule.keep(_scored(0.95, 0.72, 0.6))] == [0.95, 0.72]  # sure, if not 0.9 x best
    assert [f.score for f in rule.keep(_scored(0.55))] == [0.55]
    assert rule.keep(_scored(0.45)) == [] and rule.keep([]) == []


@pytest.mark.shared
def test_the_rule_removes_phantoms_on_face_tiles_and_keeps_the_real_face(faces: list[np.ndarray]) -> None:
    """One face on blurred tiles cut from other faces: the background where phantoms appear."""
    rng = np.random.default_rng(3)
    scenes = [make_scene([face], rng, tiles_from=faces[:i] + faces[i + 1 :]) for i, face in enumerate(faces)]
    plain, ruled = FaceDetector(threads=1, relative_score=0.0), FaceDetector(threads=1)
    extra = {"plain": 0, "ruled": 0}
    for scene in scenes:
        before, after = plain.detect(scene.image), ruled.detect(scene.image)
        extra["plain"] += len(before) > 1
        extra["ruled"] += len(after) > 1
        if before and box_iou(before[0].box, scene.boxes[0]) >= 0.5:
            assert box_iou(after[0].box, scene.boxes[0]) >= 0.5
    assert extra["ruled"] < extra["plain"], extra
