"""What every artifact-backed asset does around its own work: build the artifact once per fingerprint,
hand it on as a handle and report the same standard metadata."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol, TypeVar

import dagster as dg

from age_assets.assets.metadata import peak_rss_mb
from age_assets.resources import Storage
from age_assets.storage import atomic_write_text, build_once, bytes_on_disk

BUILD_COST = "build_cost.json"
"""In each artifact folder: ``seconds`` and ``peak_rss_mb`` of the step that built it, written when
that step ends (after the folder is in place: the artifact itself does not depend on it)."""


class Handle(Protocol):
    def __init__(self, folder: Path, fingerprint: str) -> None: ...


H = TypeVar("H", bound=Handle)


def cost_metadata(folder: Path, started: float, reused: bool) -> dict[str, Any]:
    """What the step that built the artifact in ``folder`` cost, as ``build_seconds`` and
    ``build_peak_rss_mb``, and ``reused``; after a reuse also this step's own ``reuse_seconds`` and
    ``reuse_peak_rss_mb``.

    Call it last in the step (``started``: ``time.perf_counter()`` when it began). A step that built
    the artifact stores its cost there, so that every later reuse shows it (an artifact built
    before costs were stored shows none).
    """
    stored = folder / BUILD_COST
    now = {"seconds": round(time.perf_counter() - started, 2), "peak_rss_mb": peak_rss_mb()}
    if not reused:
        atomic_write_text(stored, json.dumps(now))
        return {**{f"build_{key}": value for key, value in now.items()}, "reused": False}
    built = json.loads(stored.read_text()) if stored.is_file() else {}
    return {**{f"build_{key}": value for key, value in built.items()},
            **{f"reuse_{key}": value for key, value in now.items()}, "reused": True}


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
    about its artifact. Every asset then reports the same keys: the build's and any reuse's cost
    (``cost_metadata``), ``size_mb`` on disk and ``fingerprint``.
    """
    folder = storage.artifact(asset, fingerprint)
    reused = build_once(folder, build)
    result = handle(folder, fingerprint)
    return dg.Output(result, data_version=dg.DataVersion(fingerprint), metadata={
        **metadata(result),
        **cost_metadata(folder, started, reused),
        "size_mb": float(f"{bytes_on_disk(folder) / 1e6:.3g}"),
        "fingerprint": fingerprint,
    })
