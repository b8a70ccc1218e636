"""The container images, built and run on this machine (podman, buildah and mmdebstrap, Debian
packages). Minutes and gigabytes: only with AGE_ASSETS_BUILD_IMAGES=1."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from age_assets_tests.conftest import synthetic_face, write_utkface

ROOT = Path(__file__).resolve().parents[1]
IMAGES = ROOT / "deploy" / "images"
VERSION = "0.1.0"

pytestmark = [
    pytest.mark.image, pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("AGE_ASSETS_BUILD_IMAGES") != "1", reason="set AGE_ASSETS_BUILD_IMAGES=1"),
    pytest.mark.skipif(not all(shutil.which(tool) for tool in ("podman", "buildah", "mmdebstrap")),
                       reason="needs podman, buildah and mmdebstrap"),
]


def sh(*args: str) -> str:
    return subprocess.run(args, check=True, capture_output=True, text=True, cwd=ROOT).stdout


def test_code_image_materializes_the_data_assets(tmp_path: Path) -> None:
    sh(str(IMAGES / "build.sh"), "code")
    write_utkface(tmp_path / "faces", n=80)
    (tmp_path / "faces").chmod(0o755)
    out = sh(str(IMAGES / "smoke.sh"), "code", f"localhost/age-assets:{VERSION}", str(tmp_path / "faces"))
    assert out.count("STEP_SUCCESS") >= 3 and "RUN_SUCCESS" in out and "FAILURE" not in out, out


def test_serving_image_answers_health_and_predict(tiny_export: Path, tmp_path: Path) -> None:
    sh(str(IMAGES / "build.sh"), "serve")
    photo = tmp_path / "face.jpg"
    synthetic_face(30, size=256).save(photo)
    health, prediction = sh(str(IMAGES / "smoke.sh"), "serve", f"localhost/age-assets-serve:{VERSION}",
                            str(tiny_export), str(photo)).strip().splitlines()[-2:]
    assert json.loads(health)["status"] == "ok"
    assert "faces" in json.loads(prediction)
