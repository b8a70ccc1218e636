"""Where a backbone's ImageNet weights come from (no Keras import: cheap to call anywhere)."""

from __future__ import annotations

import functools
from pathlib import Path

from age_assets.datasets.download import file_checksum


def weights_source(name: str, weights_dir: str | Path | None) -> str:
    """``<weights_dir>/<name>.weights.h5`` where that file exists, else ``"imagenet"`` (downloaded)."""
    if weights_dir:
        path = Path(weights_dir) / f"{name}.weights.h5"
        if path.is_file():
            return str(path)
    return "imagenet"


def weights_identity(source: str | None) -> str:
    """What names a weights source in cache keys and data versions: ``"imagenet"``, ``"None"`` (random
    initialisation), or a digest of the file.

    A digest rather than the path: the same file in another folder (or named by a relative path
    from elsewhere) reuses cached features, and a file replaced at the same path does not.
    """
    if source is None or source == "imagenet":
        return str(source)
    path = Path(source).resolve()
    stat = path.stat()
    return _digest(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=32)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    """Size and modification time are part of the cache key so that a rewritten file is read again."""
    return f"sha256:{file_checksum(path, 'sha256')[:16]}"
