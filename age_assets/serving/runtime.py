"""Run the exported age estimator on LiteRT (the default: lightest, fastest to start) or ONNX Runtime."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np

from age_assets.export_files import DESCRIPTION
from age_assets.ml.intervals import IntervalTable

REBUILD = ("rebuild it with: dg launch --assets exported_model  "
           "(or: dagster asset materialize -m age_assets --select exported_model)")


INSTALL = {"onnxruntime": "pip install 'age_assets[onnx]'", "ai_edge_litert": "pip install age_assets"}
"""How to install each runtime: LiteRT comes with the package, ONNX Runtime with its ``onnx`` extra."""


class ModelLoadError(RuntimeError):
    """An exported model is missing or damaged; the message names the file and how to rebuild it."""


def _threads(threads: int | None) -> int:
    return threads or min(4, os.cpu_count() or 1)


class ExportedModel:
    """``predict(crops)`` -> ages [N] and bucket probabilities [N, 7], from a ``.tflite`` or ``.onnx`` file.

    Crops are uint8 RGB ``[N, S, S, 3]``; other sizes are resized bilinearly inside the model, so
    callers resize to ``image_size`` themselves with a better filter where quality matters.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self.path = Path(path)
        description = self.path.parent / DESCRIPTION
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: exported model file is missing; {REBUILD}")
        try:
            self.description = json.loads(description.read_text())
            self.image_size: int = int(self.description["image_size"])
            self.bucket_labels: list[str] = list(self.description["bucket_labels"])
            table = self.description.get("intervals")
            self.interval_table = IntervalTable.from_json(table) if table is not None else None
        except (OSError, ValueError, KeyError) as error:
            raise ModelLoadError(f"{description}: cannot read the export's description ({error}); {REBUILD}") from error
        try:
            runtime = OnnxRuntime if self.path.suffix == ".onnx" else LiteRT
            self._run = runtime(self.path, _threads(threads))
        except Exception as error:  # each runtime raises its own types for a damaged file
            if isinstance(error, ModuleNotFoundError) and error.name in INSTALL:
                raise ModelLoadError(f"{self.path}: running it needs {error.name}, which is not installed: "
                                     f"{INSTALL[error.name]}") from error
            raise ModelLoadError(
                f"{self.path}: cannot be loaded ({type(error).__name__}: {error}); {REBUILD}") from error

    def predict(self, crops: np.ndarray, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
        crops = np.ascontiguousarray(crops, dtype=np.uint8)
        if crops.ndim != 4 or crops.shape[-1] != 3:
            raise ValueError(f"crops must be uint8 [N, H, W, 3], got {crops.shape}")
        if not len(crops):
            return np.zeros(0, np.float32), np.zeros((0, len(self.bucket_labels)), np.float32)
        parts = [self._run(crops[i:i + batch]) for i in range(0, len(crops), batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


    def intervals(self, ages: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per coverage (``"80"``, ``"90"``), the (low, high) ages around ``predict``'s ages, from the
        table in ``export.json``; empty for an export made before intervals."""
        return self.interval_table(ages) if self.interval_table is not None else {}


class LiteRT:
    """The model on LiteRT's interpreter (XNNPACK on the CPU), re-planned when the batch shape changes.

    An interpreter holds its tensors between calls, so one call runs at a time (a server's threads
    take turns); the interpreter's own threads still use every core it was given.
    """

    def __init__(self, path: Path, threads: int) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = [o["index"] for o in self.interpreter.get_output_details()]
        self.shape: tuple[int, ...] = ()
        self.lock = threading.Lock()

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            if crops.shape != self.shape:
                self.interpreter.resize_tensor_input(self.input, crops.shape)
                self.interpreter.allocate_tensors()
                self.shape = crops.shape
            self.interpreter.set_tensor(self.input, crops)
            self.interpreter.invoke()
            return _by_rank([self.interpreter.get_tensor(o) for o in self.outputs])


class OnnxRuntime:
    """The model on ONNX Runtime's CPU provider."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # Spinning worker threads burn the cores they wait on; on a shared CPU that slows everyone.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return _by_rank(self.session.run(None, {self.input: crops}))


def _by_rank(outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(ages, bucket probabilities): runtimes name outputs differently, but only the age is 1-D."""
    ages = next(o for o in outputs if o.ndim == 1)
    buckets = next(o for o in outputs if o.ndim == 2)
    return ages.astype(np.float32), buckets.astype(np.float32)
