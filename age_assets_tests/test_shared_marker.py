"""The ``shared`` marker (conftest): where ../shared is here, a marked test that skips fails the run."""

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

THROWAWAY = '''
import pytest


@pytest.mark.shared
def test_skips_in_its_body():
    pytest.skip("no faces found")


@pytest.mark.shared
@pytest.mark.skipif(True, reason="needs the weights file")
def test_skipped_by_a_mark():
    pass


@pytest.mark.shared(allowed_skip="needs Chromium")
@pytest.mark.skipif(True, reason="needs Chromium (not about ../shared)")
def test_skipped_for_something_else():
    pass


def test_unmarked():
    pytest.skip("not about ../shared")


@pytest.mark.shared
def test_runs():
    pass
'''


def run_throwaway(tmp_path: Path, shared_here: bool) -> subprocess.CompletedProcess[str]:
    """pytest on THROWAWAY in a fresh process, with the conftest's hook pointed at a ../shared of our own."""
    shared = tmp_path / "shared"
    if shared_here:
        (shared / "data" / "utkface").mkdir(parents=True)
    project = tmp_path / "project"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\nmarkers =\n    shared: needs ../shared\n")
    (project / "conftest.py").write_text(
        "from pathlib import Path\n\n"
        "import age_assets_tests.conftest as conftest\n\n"
        f"conftest.SHARED = Path({str(shared)!r})\n"
        "conftest.SHARED_UTKFACE = conftest.SHARED / 'data' / 'utkface'\n"
        "pytest_runtest_makereport = conftest.pytest_runtest_makereport\n"
    )
    (project / "test_throwaway.py").write_text(THROWAWAY)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-p", "no:warnings",
         "--strict-markers", "-rA"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300,
    )


def test_a_shared_test_that_skips_fails_where_shared_is_here(tmp_path: Path) -> None:
    result = run_throwaway(tmp_path, shared_here=True)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    # skipped in the body: a failure; skipped by a mark, at setup: an error; each says why
    assert "1 failed, 1 passed, 2 skipped, 1 error" in out, out
    assert f"test_skips_in_its_body is marked 'shared' and {tmp_path / 'shared'} is here, yet it was skipped: " \
           "no faces found" in out
    assert "test_skipped_by_a_mark is marked 'shared'" in out and "it was skipped: needs the weights file" in out
    assert "SKIPPED [1] test_throwaway.py" in out and ": needs Chromium (not about ../shared)" in out


def test_shared_tests_skip_as_usual_where_shared_is_missing(tmp_path: Path) -> None:
    result = run_throwaway(tmp_path, shared_here=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 4 skipped" in result.stdout, result.stdout
