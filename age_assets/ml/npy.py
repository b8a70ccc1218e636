"""Stream rows into and out of ``.npy`` stacks with flat memory.

Reading or writing through one long-lived memory map leaves every touched page counted in the
process's resident memory, so a pass over a 10 GB stack looks like a 10 GB process. Writes here go
through plain file writes and reads through short-lived maps of one block at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from age_assets.storage import require_free_space


def read_rows(path: Path, start: int, stop: int) -> np.ndarray:
    """Rows ``start:stop`` of a stack as an in-memory copy; the map is released on return."""
    stack = np.load(path, mmap_mode="r")
    try:
        return np.array(stack[start:stop])
    finally:
        del stack


def stack_length(path: Path) -> int:
    return int(np.load(path, mmap_mode="r").shape[0])


def iter_blocks(path: Path, block: int = 256) -> Iterator[np.ndarray]:
    """A stack block by block, in order."""
    n = stack_length(path)
    for start in range(0, n, block):
        yield read_rows(path, start, min(n, start + block))


class StackWriter:
    """Appends rows to a ``.npy`` file declared for at most ``capacity`` rows.

    If fewer rows arrive, ``close`` rewrites the file to hold exactly those. The file is created
    sparse, so whether the rows will fit on the disk is checked first (``NotEnoughSpace``).
    """

    def __init__(self, path: Path, capacity: int, row_shape: tuple[int, ...], dtype: DTypeLike = np.uint8):
        self.path, self.capacity, self.row_shape, self.dtype = Path(path), capacity, row_shape, np.dtype(dtype)
        require_free_space(self.path.parent, capacity * int(np.prod(row_shape)) * self.dtype.itemsize,
                           f"writing {self.path.name}")
        header = np.lib.format.open_memmap(self.path, mode="w+", dtype=self.dtype, shape=(capacity, *row_shape))
        self.offset = header.offset
        del header
        self.file = open(self.path, "r+b")
        self.file.seek(self.offset)
        self.rows = 0

    def append(self, rows: np.ndarray) -> None:
        """Append one row or a block of rows."""
        rows = np.ascontiguousarray(rows, dtype=self.dtype)
        if rows.shape == self.row_shape:
            rows = rows[None]
        if rows.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path}: row of shape {rows.shape[1:]} where {self.row_shape} was declared")
        if self.rows + len(rows) > self.capacity:
            raise ValueError(f"{self.path}: more than the declared {self.capacity} rows")
        self.file.write(rows.tobytes())
        self.rows += len(rows)

    def close(self) -> int:
        self.file.close()
        if self.rows < self.capacity:
            self._shrink()
        return self.rows

    def _shrink(self, block: int = 1024) -> None:
        scratch = self.path.with_name(self.path.name + ".shrink")
        smaller = StackWriter(scratch, self.rows, self.row_shape, self.dtype)
        for start in range(0, self.rows, block):
            smaller.append(read_rows(self.path, start, min(self.rows, start + block)))
        smaller.close()
        os.replace(scratch, self.path)

    def __enter__(self) -> StackWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.file.closed:
            self.file.close()
