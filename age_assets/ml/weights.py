"""Where a backbone's ImageNet weights come from (no Keras import: cheap to call anywhere)."""

from __future__ import annotations

from pathlib import Path


def weights_source(name: str, weights_dir: str | Path | None) -> str:
    """``<weights_dir>/<name>.weights.h5`` where that file exists, else ``"imagenet"`` (downloaded)."""
    if weights_dir:
        path = Path(weights_dir) / f"{name}.weights.h5"
        if path.is_file():
            return str(path)
    return "imagenet"
