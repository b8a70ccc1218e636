"""Read the weights of a TensorFlow.js graph model (``model.json`` beside its ``.bin`` files) without
TensorFlow.js: NumPy arrays by name, dequantized as the format describes.

The ``.json`` holds the graph and a weights manifest: groups of ``.bin`` files and, in their order,
each weight's name, shape, dtype and optional quantization. A group's files are one byte stream cut
into pieces, so the weights are read in manifest order from the concatenated files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_}
QUANTIZED = {"float16": np.float16, "uint8": np.uint8, "uint16": np.uint16}


class TfjsModelError(ValueError):
    """A TensorFlow.js model file is missing, truncated or not what its manifest says."""


def read_model_json(path: str | Path) -> dict[str, Any]:
    """The parsed ``model.json``, or an error naming the file and what is wrong with it."""
    path = Path(path)
    if not path.is_file():
        raise TfjsModelError(f"{path}: no such file")
    try:
        model = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise TfjsModelError(f"{path}: not a TensorFlow.js model.json ({error})") from error
    if not isinstance(model, dict) or "weightsManifest" not in model or "modelTopology" not in model:
        raise TfjsModelError(f"{path}: not a TensorFlow.js graph model (no modelTopology or weightsManifest)")
    return model


def _decode(spec: dict[str, Any], data: bytes, source: Path) -> np.ndarray:
    shape = [int(d) for d in spec["shape"]]
    quantization = spec.get("quantization")
    if quantization:
        stored = QUANTIZED.get(quantization["dtype"])
        if stored is None:
            raise TfjsModelError(f"{source}: weight {spec['name']} is quantized as {quantization['dtype']}, "
                                 f"which this reader does not know")
        values = np.frombuffer(data, stored)
        if stored == np.float16:
            return values.astype(np.float32).reshape(shape)
        return (values.astype(np.float32) * np.float32(quantization["scale"])
                + np.float32(quantization["min"])).reshape(shape)
    if spec["dtype"] not in DTYPES:
        raise TfjsModelError(f"{source}: weight {spec['name']} has dtype {spec['dtype']}, which this reader does "
                             "not know")
    return np.frombuffer(data, DTYPES[spec["dtype"]]).reshape(shape).copy()


def _size(spec: dict[str, Any]) -> int:
    quantization = spec.get("quantization")
    dtype = QUANTIZED.get(quantization["dtype"]) if quantization else DTYPES.get(spec["dtype"])
    return math.prod(int(d) for d in spec["shape"]) * np.dtype(dtype or np.uint8).itemsize


def read_weights(model_json: str | Path) -> dict[str, np.ndarray]:
    """Every weight of the model, by its name in the graph, as float32 (or int32) arrays.

    Raises ``TfjsModelError`` naming the file where a ``.bin`` is missing, shorter or longer than
    its manifest says.
    """
    model_json = Path(model_json)
    weights: dict[str, np.ndarray] = {}
    for group in read_model_json(model_json)["weightsManifest"]:
        files = [model_json.parent / p for p in group["paths"]]
        for f in files:
            if not f.is_file():
                raise TfjsModelError(f"{f}: missing (the weights file {model_json.name} names)")
        data = b"".join(f.read_bytes() for f in files)
        expected = sum(_size(spec) for spec in group["weights"])
        if len(data) != expected:
            names = ", ".join(str(f) for f in files)
            raise TfjsModelError(f"{names}: {len(data):,} bytes where {model_json.name} describes {expected:,}: "
                                 "truncated or from another model")
        offset = 0
        for spec in group["weights"]:
            size = _size(spec)
            weights[spec["name"]] = _decode(spec, data[offset:offset + size], files[0])
            offset += size
    return weights
