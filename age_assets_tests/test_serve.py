"""``age-assets serve``: answers, limits and errors of the API in process; the page in headless Chromium.

The ``estimator`` and ``photo`` fixtures are what an end-to-end test runs on; the tests of the
server's own behaviour (limits, failures, queueing) bring stand-ins that are slow or fail on cue.
"""

from __future__ import annotations

import asyncio
import io
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image

from age_assets.ml.buckets import BUCKET_LABELS, age_to_bucket
from age_assets.serving import web
from age_assets.serving.photos import AgeEstimator, FaceAge, decode_photo
from age_assets.serving.scenes import make_scene
from age_assets.serving.web import Estimator, ServeLimits, create_app
from age_assets_tests.conftest import SHARED_UTKFACE
from age_assets_tests.test_photos import _png_header

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = Path(os.environ.get("AGE_ASSETS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
PHOTO_NAME = "party.jpg"
PHOTO_SIZE = (640, 480)


class FakeEstimator:
    """One face in the middle of every picture, 34.2 years old; counts the calls running at once."""

    image_size = 224

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def faces(self, image: np.ndarray) -> list[FaceAge]:
        with self._lock:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            time.sleep(self.delay_s)
            return self.estimate(image)
        finally:
            with self._lock:
                self.running -= 1

    def estimate(self, image: np.ndarray) -> list[FaceAge]:
        height, width = image.shape[:2]
        probabilities = dict.fromkeys(BUCKET_LABELS, 0.05) | {"28-45": 0.7}
        box = (width // 4, height // 4, width // 2, height // 2)
        return [FaceAge(index=0, box=box, score=0.97, age=34.2, bucket="28-45", probabilities=probabilities)]


class WeakFace(FakeEstimator):
    def estimate(self, image: np.ndarray) -> list[FaceAge]:
        return [replace(face, score=0.6) for face in super().estimate(image)] + super().estimate(image)


class NoFaces(FakeEstimator):
    def estimate(self, image: np.ndarray) -> list[FaceAge]:
        return []


class FailsOnce(FakeEstimator):
    """Raises on the first picture, then answers as FakeEstimator."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def estimate(self, image: np.ndarray) -> list[FaceAge]:
        if not self.failed:
            self.failed = True
            raise RuntimeError("out of cheese")
        return super().estimate(image)


class Gated(FakeEstimator):
    """Holds every call until ``release`` is set; ``entered`` says a call is inside."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def estimate(self, image: np.ndarray) -> list[FaceAge]:
        self.entered.set()
        assert self.release.wait(timeout=30)
        return super().estimate(image)


@pytest.fixture
def fake() -> FakeEstimator:
    return FakeEstimator()


@pytest.fixture(scope="module")
def estimator(tiny_export: Path) -> Estimator:
    """The end-to-end tests run the real thing: detector, crops and an exported model on LiteRT."""
    return AgeEstimator(tiny_export / "age_estimator.tflite")


@pytest.fixture
def photo() -> bytes:
    """A PHOTO_SIZE JPEG with one real face pasted into a busy background."""
    faces = sorted(SHARED_UTKFACE.glob("*.jpg"))
    if not faces:
        pytest.skip(f"needs the shared faces in {SHARED_UTKFACE}")
    face = np.asarray(Image.open(faces[7]).convert("RGB"))
    return make_scene([face], np.random.default_rng(0), size=PHOTO_SIZE).jpeg


@contextmanager
def client_for(estimator: Estimator, **limits: float) -> Iterator[TestClient]:
    with TestClient(create_app(estimator, ServeLimits(**limits), model=Path("model.onnx"))) as client:
        yield client


def post(client: TestClient, data: bytes, name: str = PHOTO_NAME, field: str = "image") -> tuple[int, dict]:
    response = client.post("/predict", files={field: (name, data, "image/jpeg")})
    return response.status_code, response.json()


def expected_faces(estimator: Estimator, photo: bytes) -> list[dict]:
    faces = estimator.faces(decode_photo(photo, PHOTO_NAME, ServeLimits().max_pixels))
    return [{"index": f.index, "box": dict(zip(("x", "y", "width", "height"), f.box)), "score": f.score,
             "low_confidence": f.low_confidence, "age": f.age, "bucket": f.bucket, "probabilities": f.probabilities,
             "intervals": {key: {"low": low, "high": high} for key, (low, high) in f.intervals.items()}}
            for f in faces]


@pytest.mark.shared
def test_a_photo_gives_each_face_with_its_age(estimator: Estimator, photo: bytes) -> None:
    with client_for(estimator) as client:
        status, body = post(client, photo)
    assert status == 200, body
    assert (body["file"], body["width"], body["height"]) == (PHOTO_NAME, *PHOTO_SIZE)
    assert body["faces"] and body["faces"] == expected_faces(estimator, photo)
    for face in body["faces"]:
        assert set(face["intervals"]) == {"80", "90"}
        assert face["intervals"]["90"]["low"] <= face["intervals"]["80"]["low"] <= face["intervals"]["80"]["high"]
        assert face["intervals"]["80"]["high"] <= face["intervals"]["90"]["high"]
    assert body["message"] == f"{len(body['faces'])} face{'s' if len(body['faces']) > 1 else ''} found"


@pytest.mark.shared
def test_a_photo_without_faces_says_so(photo: bytes) -> None:
    with client_for(NoFaces()) as client:
        status, body = post(client, photo)
    assert (status, body["faces"], body["message"]) == (200, [], "no face found")


def test_health_names_the_model_and_its_input_size(estimator: Estimator) -> None:
    with client_for(estimator) as client:
        body = client.get("/health").json()
    assert body == {"status": "ok", "image_size": estimator.image_size, "model": "model.onnx", "fingerprint": None,
                    "max_upload_bytes": ServeLimits().max_upload_bytes, "max_pixels": ServeLimits().max_pixels}


@pytest.mark.shared
def test_serve_loads_the_model_once_and_runs_uvicorn(monkeypatch: pytest.MonkeyPatch, photo: bytes) -> None:
    loaded: list[tuple[Path, bool]] = []
    served: dict = {}

    def load(model: Path, detect: bool) -> FakeEstimator:
        loaded.append((model, detect))
        return FakeEstimator()

    monkeypatch.setattr(web, "AgeEstimator", load)
    monkeypatch.setattr(web.uvicorn, "run", lambda app, **options: served.update(app=app, **options))
    web.serve(Path("export/model.tflite"), port=8123, detect=False)
    assert loaded == [(Path("export/model.tflite"), False)]
    assert (served["host"], served["port"]) == ("127.0.0.1", 8123)
    with TestClient(served["app"]) as client:
        assert client.get("/health").json()["model"] == "export/model.tflite"
        assert post(client, photo)[0] == 200


def test_the_page_and_its_files_come_from_the_server_alone(estimator: Estimator) -> None:
    with client_for(estimator) as client:
        page = client.get("/")
        files = [client.get(f"/{name}") for name in ("app.js", "style.css")]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert all(f'id="{id}"' in page.text for id in ("file", "faces", "error", "canvas"))
    assert [f.status_code for f in files] == [200, 200]
    assert all("//" not in line for line in page.text.splitlines() if "src=" in line or "href=" in line)
    assert "http" not in files[0].text


def asgi_post(app: FastAPI, headers: list[tuple[bytes, bytes]], chunks: Iterable[bytes]) -> tuple[int, dict, int]:
    """Status, JSON body and how many body bytes the app read, for a POST /predict fed chunk by chunk."""
    source = iter(chunks)
    read = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal read
        chunk = next(source, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        read += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/predict", "raw_path": b"/predict", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"multipart/form-data; boundary=xyz"), *headers],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), read


def endless_upload(chunk_bytes: int = 64 * 1024, most_bytes: int = 200_000_000) -> Iterator[bytes]:
    yield b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="huge.jpg"\r\n\r\n'
    for _ in range(most_bytes // chunk_bytes):
        yield bytes(chunk_bytes)


def test_an_upload_declared_far_over_the_limit_is_refused_unread(fake: FakeEstimator) -> None:
    app = create_app(fake, ServeLimits(max_upload_bytes=1_000_000))
    status, body, read = asgi_post(app, [(b"content-length", b"2000000000")], endless_upload())
    assert (status, read) == (413, 0)
    assert "1 MB limit" in body["error"]


def test_a_client_that_sends_its_whole_body_first_receives_the_413(fake: FakeEstimator) -> None:
    """urllib writes all 11 MB before reading; a server that answers and closes early resets it."""
    body = b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n\r\n' + bytes(11_000_000)
    with live_server(create_app(fake, ServeLimits(max_upload_bytes=1_000_000))) as url:
        request = urllib.request.Request(f"{url}/predict", data=body + b"\r\n--xyz--\r\n", method="POST",
                                         headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413 and "1 MB limit" in json.loads(refused.value.read())["error"]
    assert fake.most_running == 0


def test_an_undeclared_upload_is_cut_off_at_the_limit(fake: FakeEstimator) -> None:
    app = create_app(fake, ServeLimits(max_upload_bytes=1_000_000))
    status, body, read = asgi_post(app, [], endless_upload())
    assert status == 413 and "1 MB limit" in body["error"]
    assert read < 1_200_000


@pytest.mark.shared
def test_a_file_over_the_upload_limit_is_named(fake: FakeEstimator, photo: bytes) -> None:
    with client_for(fake, max_upload_bytes=len(photo) - 1) as client:
        status, body = post(client, photo)
    assert status == 413 and body["error"].startswith(f"{PHOTO_NAME} is ")


@pytest.mark.shared
def test_a_picture_over_the_pixel_limit_is_refused(fake: FakeEstimator, photo: bytes) -> None:
    with client_for(fake, max_pixels=PHOTO_SIZE[0] * PHOTO_SIZE[1] - 1) as client:
        status, body = post(client, photo)
    assert status == 413 and PHOTO_NAME in body["error"], body
    assert fake.most_running == 0


def test_a_face_under_the_confidence_is_flagged_in_the_json() -> None:
    picture = io.BytesIO()
    Image.new("RGB", (64, 48)).save(picture, "PNG")
    with client_for(WeakFace()) as client:
        status, body = post(client, picture.getvalue(), "weak.png")
    assert status == 200 and [face["low_confidence"] for face in body["faces"]] == [True, False]


def test_a_picture_over_pillows_bomb_limit_gets_413(fake: FakeEstimator) -> None:
    with client_for(fake) as client:
        status, body = post(client, _png_header(16000, 16000), "huge.png")
    assert status == 413 and body["error"].startswith("huge.png: more pixels than the limit"), body


@pytest.mark.shared
@pytest.mark.parametrize("name, cut", [("notes.txt", None), ("empty.jpg", 0), ("half.jpg", 0.5)])
def test_files_that_are_not_pictures_are_named(fake: FakeEstimator, photo: bytes, name: str,
                                               cut: float | None) -> None:
    data = b"just some notes, no picture" if cut is None else photo[: int(len(photo) * cut)]
    with client_for(fake) as client:
        status, body = post(client, data, name=name)
    assert status == 415 and name in body["error"], (status, body)
    assert fake.most_running == 0


@pytest.mark.shared
def test_a_request_without_the_image_field_gets_422(fake: FakeEstimator, photo: bytes) -> None:
    with client_for(fake) as client:
        status, body = post(client, photo, field="photo")
    assert status == 422 and "'image'" in body["error"]


@pytest.mark.shared
def test_a_failing_estimator_gives_500_and_the_server_goes_on(photo: bytes) -> None:
    with client_for(FailsOnce()) as client:
        failed, body = post(client, photo)
        again, _ = post(client, photo)
    assert failed == 500 and PHOTO_NAME in body["error"] and "out of cheese" in body["error"]
    assert again == 200


@pytest.mark.shared
def test_one_inference_at_a_time_when_max_concurrent_is_1(photo: bytes) -> None:
    estimator = FakeEstimator(delay_s=0.2)
    with client_for(estimator, max_concurrent=1) as client, ThreadPoolExecutor(3) as pool:
        start = time.monotonic()
        statuses = [status for status, _ in pool.map(lambda _: post(client, photo), range(3))]
        elapsed = time.monotonic() - start
    assert statuses == [200, 200, 200]
    assert estimator.most_running == 1 and elapsed >= 0.6


@pytest.mark.shared
def test_a_request_waiting_past_the_queue_timeout_gets_503(photo: bytes) -> None:
    estimator = Gated()
    with client_for(estimator, max_concurrent=1, queue_timeout_s=0.3) as client, ThreadPoolExecutor(1) as pool:
        first = pool.submit(post, client, photo)
        assert estimator.entered.wait(timeout=30)
        status, body = post(client, photo, name="second.jpg")
        estimator.release.set()
        assert first.result(timeout=30)[0] == 200
    assert status == 503 and "second.jpg" in body["error"] and "busy" in body["error"]


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_concurrent must be positive"):
        ServeLimits(max_concurrent=0)


def test_serving_imports_neither_tensorflow_nor_dagster() -> None:
    code = ("import sys, age_assets.serving.web; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'keras', 'dagster'}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@contextmanager
def live_server(app: FastAPI) -> Iterator[str]:
    """``app`` under uvicorn in a thread, on a free loopback port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()


@pytest.mark.slow
@pytest.mark.shared(allowed_skip="needs Chromium")
@pytest.mark.xdist_group("webserver")  # one Chromium at a time with test_ui on a small machine
@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian's chromium package; .ci/run installs it)")
def test_the_page_boxes_each_face_with_its_age_in_headless_chromium(estimator: Estimator, photo: bytes) -> None:
    from playwright.sync_api import sync_playwright

    face = expected_faces(estimator, photo)[0]
    label = f"age {round(face['age'])} · {face['bucket']}{' (unsure face)' if face['low_confidence'] else ''}"
    box = face["box"]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with live_server(create_app(estimator, ServeLimits())) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url, timeout=30_000)
            page.set_input_files("#file", files=[{"name": PHOTO_NAME, "mimeType": "image/jpeg", "buffer": photo}])
            first = page.locator("#faces li").first
            first.wait_for(timeout=30_000)
            assert first.locator(".age").inner_text() == label
            low, high = face["intervals"]["90"]["low"], face["intervals"]["90"]["high"]
            shown = f"90%: {math.floor(low + 0.5)}–{math.floor(high + 0.5)} years"
            assert shown in first.locator(".detail").inner_text()
            page.wait_for_function("label => document.getElementById('canvas').getAttribute('aria-label')"
                                   ".includes(label)", arg=label, timeout=30_000)
            edge = page.evaluate(
                """([box, width]) => {
                     const canvas = document.getElementById('canvas');
                     const scale = canvas.width / width;
                     const x = Math.round(box.x * scale), y = Math.round((box.y + box.height / 2) * scale);
                     return Array.from(canvas.getContext('2d').getImageData(x, y, 1, 1).data);
                   }""", [box, PHOTO_SIZE[0]])
            assert edge[0] > 200 and edge[1] > 150 and edge[2] < 100, f"no box edge on the canvas: {edge}"
            page.screenshot(path=SCREENSHOTS / "serve-page.png", full_page=True)

            page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain",
                                                  "buffer": b"just some notes"}])
            error = page.locator("#error")
            error.wait_for(state="visible", timeout=30_000)
            assert "notes.txt" in error.inner_text()
            assert page.locator("#faces li").count() == 0
            page.screenshot(path=SCREENSHOTS / "serve-page-error.png", full_page=True)
        finally:
            browser.close()


NODE = shutil.which("node")


@pytest.mark.skipif(NODE is None, reason="needs Node.js to run the page's script")
def test_the_page_rounds_an_age_into_the_bucket_it_falls_in() -> None:
    """The page's ``age N · bucket`` label rounds as ``age_to_bucket`` does, so 2.5 is 2, in 0-2."""
    script = (Path(web.__file__).parent / "static" / "app.js").read_text()
    line = next(line for line in script.splitlines() if line.startswith("const wholeYears"))
    ages = [0.4, 2.5, 2.51, 3.5, 9.5, 10.5, 20.5, 27.5, 45.5, 65.5, 66.2]
    shown = subprocess.run([NODE, "-e", f"{line}\nconsole.log(JSON.stringify({ages}.map(wholeYears)))"],
                           capture_output=True, text=True, check=True).stdout
    whole = json.loads(shown)
    assert whole == np.rint(ages).tolist()
    assert (age_to_bucket(np.array(whole)) == age_to_bucket(np.array(ages))).all()
