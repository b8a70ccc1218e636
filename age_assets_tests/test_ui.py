"""The webserver loads every asset, check, schedule and sensor; the asset graph renders in Chromium."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from age_assets.definitions import build_defs

ROOT = Path(__file__).resolve().parents[1]
BACKBONES = "mobilenet_v3_small,mobilenet_v2"
SCREENSHOTS = Path(os.environ.get("AGE_ASSETS_TEST_ARTIFACTS", ROOT / "test-artifacts"))
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("webserver")]  # one worker, one webserver for the module
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)

QUERY = """{
  assetNodes { assetKey { path } groupName kinds description
    assetChecksOrError { ... on AssetChecks { checks { name blocking } } } }
  repositoriesOrError { ... on RepositoryConnection { nodes {
    schedules { name cronSchedule scheduleState { status } }
    sensors { name sensorState { status } } } } }
}"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def webserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("dagster_home")
    port = _free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "AGE_ASSETS_DATA_DIR": str(home / "data"),
           "AGE_ASSETS_BACKBONES": BACKBONES}
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("dagster-webserver")), "-m", "age_assets", "-h", "127.0.0.1",
         "-p", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 300
    try:
        while True:
            assert server.poll() is None, "dagster-webserver exited"
            try:
                urllib.request.urlopen(f"{url}/server_info", timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "dagster-webserver did not answer within 300 s"
                time.sleep(1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(f"{url}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        body = json.loads(response.read())
    assert "errors" not in body, body["errors"]
    return body["data"]


def test_graphql_lists_every_asset_check_schedule_and_sensor(webserver: str) -> None:
    defs = build_defs({"AGE_ASSETS_BACKBONES": BACKBONES})
    graph = defs.get_repository_def().asset_graph
    data = _graphql(webserver, QUERY)
    nodes = {"/".join(n["assetKey"]["path"]): n for n in data["assetNodes"]}
    assert set(nodes) == {key.to_user_string() for key in graph.get_all_asset_keys()}
    for name, node in nodes.items():
        assert node["description"] and node["groupName"] in {"data", "models", "evaluation"} and node["kinds"], name
    checks = {(name, c["name"]) for name, n in nodes.items() for c in n["assetChecksOrError"]["checks"]
              if c["blocking"]}
    assert checks == {(k.asset_key.to_user_string(), k.name) for k in graph.asset_check_keys}
    assert len(checks) == 8  # image_arrays, 2 models, 2 classifiers, bucket_ensemble, exported_model (2)
    repository = data["repositoriesOrError"]["nodes"][0]
    schedules = [(s["name"], s["scheduleState"]["status"]) for s in repository["schedules"]]
    assert schedules == [("weekly_retraining", "STOPPED")]
    assert [(s["name"], s["sensorState"]["status"]) for s in repository["sensors"]] == [("raw_data_changed", "STOPPED")]


def _dismiss_welcome_dialog(page: object) -> None:
    """A fresh browser profile gets Dagster's community dialog once, a moment after loading."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.get_by_role("button", name="Skip").click(timeout=5_000)
    except PlaywrightTimeout:
        pass


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (Debian's chromium package; .ci/run installs it)")
def test_asset_graph_renders_in_headless_chromium(webserver: str) -> None:
    from playwright.sync_api import sync_playwright

    groups: dict[str, list[str]] = {}
    for spec in (s for a in build_defs({"AGE_ASSETS_BACKBONES": BACKBONES}).assets for s in a.specs):
        groups.setdefault(spec.group_name, []).append(spec.key.to_user_string())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 2400, "height": 1800})
            for group, names in sorted(groups.items()):
                page.goto(f"{webserver}/locations/__repository__@age_assets/asset-groups/{group}", timeout=60_000)
                page.get_by_text(names[0], exact=True).first.wait_for(timeout=60_000)
                _dismiss_welcome_dialog(page)
                page.screenshot(path=SCREENSHOTS / f"asset-graph-{group}.png")
                text = page.inner_text("body")
                assert all(name in text for name in names), (group, [n for n in names if n not in text])
        finally:
            browser.close()
