"""The plain install (``pip install age_assets``, with ``[serve]`` for the web service) runs the
exported model without TensorFlow, Keras or Dagster: built from the working tree into a fresh
virtualenv, with its dependencies resolved at the pinned versions, and run from there."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from age_assets.ml.buckets import BUCKET_LABELS
from age_assets_tests.conftest import synthetic_face

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "requirements" / "constraints.txt"
HEAVY = ("tensorflow", "keras", "tf-keras", "dagster", "torch", "jax", "tf2onnx", "scikit-learn", "pandas")
"""Distributions (and, for tensorflow and dagster, every one whose name starts so) the plain install must not hold."""


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.is_file() else shutil.which("uv")
    if not found:
        pytest.fail("needs uv (the dev extra installs it)")
    return found


def _plain_env() -> dict[str, str]:
    """The environment without this checkout on the path: the fresh venv must import its own copy."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def project_copy(target: Path) -> Path:
    """What a build reads (the package and its build files), copied so the build writes nothing here."""
    target.mkdir()
    for name in ("pyproject.toml", "setup.py"):
        shutil.copy2(ROOT / name, target / name)
    shutil.copytree(ROOT / "age_assets", target / "age_assets",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return target


def install(venv: Path, requirement: str) -> None:
    """``uv pip install -c constraints.txt REQUIREMENT`` into ``venv``: a real resolution, pinned as ``make`` pins,
    and compiled to bytecode as pip does."""
    result = subprocess.run([_uv(), "pip", "install", "--quiet", "--compile-bytecode", "--python",
                             str(venv / "bin" / "python"), "-c", str(CONSTRAINTS), requirement],
                            capture_output=True, text=True, env=_plain_env(), timeout=600)
    assert result.returncode == 0, f"installing {requirement} failed:\n{result.stderr[-3000:]}"


def heavy_distributions(venv: Path) -> list[str]:
    code = ("import importlib.metadata as m, json\n"
            "print(json.dumps(sorted({d.metadata['Name'].lower().replace('_', '-') for d in m.distributions()})))")
    names = json.loads(subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                                      check=True, env=_plain_env()).stdout)
    assert "age-assets" in names and "ai-edge-litert" in names, names
    return [n for n in names if n in HEAVY or n.startswith(("tensorflow", "dagster"))]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def server(command: list[str], port: int) -> Iterator[dict[str, object]]:
    """``age-assets serve`` in its own process; yields ``/health`` once it answers."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_plain_env())
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                    health = json.loads(response.read())
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    process.kill()
                    pytest.fail(f"age-assets serve did not answer:\n{process.communicate()[0][-3000:]}")
                time.sleep(0.3)
        yield health
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_the_plain_install_predicts_and_serves_without_tensorflow_or_dagster(tmp_path: Path,
                                                                            tiny_export: Path) -> None:
    source = project_copy(tmp_path / "source")
    venv = tmp_path / "venv"
    subprocess.run([_uv(), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, env=_plain_env())
    install(venv, str(source))
    assert heavy_distributions(venv) == []
    bin_ = venv / "bin"

    faces = tmp_path / "faces"
    faces.mkdir()
    for i, age in enumerate((8, 40)):
        synthetic_face(age, size=64, seed=i).save(faces / f"face{i}.jpg", quality=95)
    Image.fromarray(np.full((120, 160, 3), 128, np.uint8)).save(tmp_path / "wall.jpg")
    model = tiny_export / "age_estimator.tflite"
    crops = subprocess.run([str(bin_ / "age-assets"), "predict", "--crops", "--model", str(model), str(faces)],
                           capture_output=True, text=True, env=_plain_env(), cwd=tmp_path)
    assert crops.returncode == 0, crops.stderr
    rows = list(csv.DictReader(io.StringIO(crops.stdout)))
    assert [Path(r["path"]).name for r in rows] == ["face0.jpg", "face1.jpg"]
    for row in rows:
        assert 0 <= float(row["age"]) <= 100 and row["bucket"] in BUCKET_LABELS
        assert sum(float(row[f"p_{label}"]) for label in BUCKET_LABELS) == pytest.approx(1, abs=1e-3)
    # A whole picture goes through the face detector, whose model files ship inside the package.
    photo = subprocess.run([str(bin_ / "age-assets"), "predict", "--model", str(model), str(tmp_path / "wall.jpg")],
                           capture_output=True, text=True, env=_plain_env(), cwd=tmp_path)
    assert photo.returncode == 0, photo.stderr
    assert list(csv.DictReader(io.StringIO(photo.stdout)))[0]["note"] == "no face found"

    onnx = subprocess.run([str(bin_ / "age-assets"), "predict", "--crops", "--runtime", "onnx", "--model",
                           str(tiny_export), str(faces)], capture_output=True, text=True, env=_plain_env())
    assert onnx.returncode == 2 and "pip install 'age_assets[onnx]'" in onnx.stderr, onnx.stderr
    graph = subprocess.run([str(bin_ / "python"), "-c", "import age_assets; age_assets.defs"],
                           capture_output=True, text=True, env=_plain_env(), cwd=tmp_path)
    assert graph.returncode != 0 and "pip install 'age_assets[train]'" in graph.stderr, graph.stderr
    (tmp_path / "data" / "artifacts").mkdir(parents=True)
    with_instance = {**_plain_env(), "DAGSTER_HOME": str(tmp_path / "dagster")}  # gc asks Dagster where it can
    cleaned = subprocess.run([str(bin_ / "age-assets"), "gc", "--data-dir", str(tmp_path / "data")],
                             capture_output=True, text=True, env=with_instance)
    assert cleaned.returncode == 0 and "would remove" in cleaned.stdout, cleaned.stderr
    no_server = subprocess.run([str(bin_ / "age-assets"), "serve", "--model", str(model)],
                               capture_output=True, text=True, env=_plain_env(), timeout=60)
    assert no_server.returncode == 2 and "pip install 'age_assets[serve]'" in no_server.stderr, no_server.stderr

    install(venv, f"{source}[serve]")
    assert heavy_distributions(venv) == []
    port = _free_port()
    with server([str(bin_ / "age-assets"), "serve", "--model", str(model), "--port", str(port)], port) as health:
        assert health["status"] == "ok" and health["model"] == str(model) and health["image_size"] == 32
        with (tmp_path / "wall.jpg").open("rb") as image:
            boundary = "slim-install-test"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"wall.jpg\"\r\n"
                    "Content-Type: image/jpeg\r\n\r\n").encode() + image.read() + f"\r\n--{boundary}--\r\n".encode()
        request = urllib.request.Request(f"http://127.0.0.1:{port}/predict", data=body,
                                         headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            answer = json.loads(response.read())
        assert (answer["file"], answer["width"], answer["height"]) == ("wall.jpg", 160, 120)
        assert answer["faces"] == [] and answer["message"] == "no face found"
