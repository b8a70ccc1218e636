"""A server on the promoted model switches to a newly promoted one under requests, none failing."""

from __future__ import annotations

import io
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from age_assets.cli import _follow_promoted
from age_assets.serving.followed_model import FollowedModel
from age_assets.serving.photos import AgeEstimator
from age_assets.serving.web import ServeLimits, create_app
from age_assets.storage import Pointer, atomic_write_text
from age_assets_tests.conftest import synthetic_face
from age_assets_tests.test_serve import live_server

pytestmark = pytest.mark.slow  # builds the tiny export


def promote(root: Path, folder: Path) -> None:
    atomic_write_text(Pointer.path(root, "promoted_model"), Pointer("Export", folder, folder.name).text(root))


def health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=30).json()


def test_serve_switches_to_a_newly_promoted_model_with_no_request_failing(tiny_export: Path, tmp_path: Path) -> None:
    root = tmp_path / "data"
    old, new, broken = (root / "artifacts" / "exported_model" / name for name in ("old", "new", "broken"))
    for folder in (old, new, broken):
        shutil.copytree(tiny_export, folder)
    (broken / "age_estimator.tflite").write_bytes(b"\x00" * 64)
    promote(root, old)
    followed = FollowedModel.follow(_follow_promoted(str(root), "litert"),
                                    lambda path: AgeEstimator(path, detect=False), interval_s=0.1)
    buffer = io.BytesIO()
    synthetic_face(40, size=32).save(buffer, format="PNG")
    face = buffer.getvalue()
    statuses: list[int] = []
    stop = threading.Event()

    def requests(url: str) -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            while not stop.is_set() and len(statuses) < 2000:
                statuses.append(client.post("/predict", files={"image": ("face.png", face, "image/png")}).status_code)

    with live_server(create_app(followed, ServeLimits(max_concurrent=2))) as url, ThreadPoolExecutor(2) as pool:
        assert health(url)["fingerprint"] == "old" and health(url)["model"] == str(old / "age_estimator.tflite")
        loops = [pool.submit(requests, url) for _ in range(2)]
        deadline = time.monotonic() + 60
        while len(statuses) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        promote(root, new)
        while health(url)["fingerprint"] != "new" and time.monotonic() < deadline:
            time.sleep(0.05)
        switched_at = len(statuses)
        promote(root, broken)  # fails to load: the server keeps the model it has
        time.sleep(0.5)
        after = health(url)
        while len(statuses) < switched_at + 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        stop.set()
        for loop in loops:
            loop.result()
    assert after["fingerprint"] == "new", "a model that does not load is not swapped in"
    assert switched_at >= 10 and len(statuses) >= switched_at + 10, "requests ran before and after the switch"
    assert set(statuses) == {200}, f"{len(statuses) - statuses.count(200)} requests failed"
