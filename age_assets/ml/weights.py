"""Where a backbone's ImageNet weights come from (no Keras import: cheap to call anywhere)."""

from __future__ import annotations

import functools
from pathlib import Path

from age_assets.datasets.download import file_checksum
from age_assets.storage import fingerprint


def weights_source(name: str, weights_dir: str | Path | None) -> str:
    """The backbone's weights file in ``weights_dir`` (``<name>.weights.h5``, or the file its table
    entry names) where it exists, else ``"imagenet"``: its published pretrained weights, downloaded."""
    from age_assets.ml.backbones import get_backbone

    if weights_dir:
        path = Path(weights_dir) / get_backbone(name).weights_file_name
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
    files = [path, *_tfjs_weight_files(path)] if path.suffix == ".json" else [path]
    digests = [_digest(f, f.stat().st_size, f.stat().st_mtime_ns) for f in files]
    return digests[0] if len(digests) == 1 else fingerprint(*digests)


def _tfjs_weight_files(model_json: Path) -> list[Path]:
    """The ``.bin`` files a TensorFlow.js ``model.json`` names, beside it."""
    import json

    manifest = json.loads(model_json.read_text()).get("weightsManifest", [])
    return [model_json.parent / p for group in manifest for p in group["paths"]]


@functools.lru_cache(maxsize=32)
def _digest(path: Path, size: int, mtime_ns: int) -> str:
    """Size and modification time are part of the cache key so that a rewritten file is read again."""
    return f"sha256:{file_checksum(path, 'sha256')[:16]}"
