"""What every artifact-backed asset does around its own work: build the artifact once per fingerprint,
hand it on as a handle and report the same standard metadata."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import dagster as dg

from age_assets.assets.metadata import peak_rss_mb
from age_assets.resources import Storage
from age_assets.storage import build_once, bytes_on_disk


class Handle(Protocol):
    def __init__(self, folder: Path, fingerprint: str) -> None: ...


H = TypeVar("H", bound=Handle)


def artifact_output(
    storage: Storage,
    asset: str,
    fingerprint: str,
    build: Callable[[Path], None],
    handle: Callable[[Path, str], H],
    started: float,
    metadata: Callable[[H], Mapping[str, Any]] = lambda _: {},
) -> dg.Output[H]:
    """Build ``asset``'s artifact for ``fingerprint`` unless it exists, and its output.

    ``started`` is when the step began (``time.perf_counter()``), ``metadata`` what this asset adds
    about its artifact. Every asset then reports the same keys: ``duration_s``, ``peak_rss_mb``,
    ``size_mb`` on disk, ``reused`` (an identical artifact already existed) and ``fingerprint``.
    """
    folder = storage.artifact(asset, fingerprint)
    reused = build_once(folder, build)
    result = handle(folder, fingerprint)
    return dg.Output(result, data_version=dg.DataVersion(fingerprint), metadata={
        **metadata(result),
        "duration_s": round(time.perf_counter() - started, 2),
        "peak_rss_mb": peak_rss_mb(),
        "size_mb": float(f"{bytes_on_disk(folder) / 1e6:.3g}"),
        "reused": reused,
        "fingerprint": fingerprint,
    })
