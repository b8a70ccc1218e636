"""Runs killed with SIGKILL mid-asset, two runs writing one asset at once, and runs that rebuild what
another run is about to read corrupt nothing and mix nothing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from age_assets.artifacts import ImageSet
from age_assets.definitions import build_defs
from age_assets_tests.conftest import Materialize, write_utkface

SELECTION = "raw_dataset,image_arrays"


def _start(data: Path, faces: Path, size: int, signal_file: Path, release_file: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "age_assets_tests.materialize_paused", str(data), str(faces), str(size),
         str(signal_file), str(release_file)],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )


def _wait_for(path: Path, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"writer exited early:\n{process.stdout.read().decode()[-3000:]}")
        assert time.monotonic() < deadline, f"the process never paused: {path} did not appear"
        time.sleep(0.2)


def _config(size: int) -> dict:
    return {"ops": {"image_arrays": {"config": {"image_size": size}}}}


def _assert_complete(images: ImageSet, size: int) -> None:
    for split in ("train", "valid", "test"):
        stack = images.images(split)
        assert stack.shape[1:] == (size, size, 3)
        assert len(stack) == len(images.labels(split)) > 0
        assert np.asarray(stack[-1]).any()


def _entries(folder: Path) -> tuple[list[str], list[str]]:
    names = sorted(p.name for p in folder.iterdir())
    return [n for n in names if not n.startswith(".")], [n for n in names if n.startswith(".")]


def test_sigkill_mid_asset_leaves_the_previous_version_intact(materialize: Materialize, tmp_path: Path) -> None:
    faces, data = tmp_path / "faces", tmp_path / "data"
    write_utkface(faces, n=60)
    env = {"AGE_ASSETS_DATASET": f"utkface:{faces}"}
    before: ImageSet = materialize(env, SELECTION, _config(24)).output_for_node("image_arrays")
    pointer = data / "pointers" / "image_arrays.json"
    pointer_text = pointer.read_text()

    writer = _start(data, faces, 32, tmp_path / "midway", tmp_path / "never")
    _wait_for(tmp_path / "midway", writer)
    os.kill(writer.pid, signal.SIGKILL)
    assert writer.wait(timeout=30) == -signal.SIGKILL

    assert pointer.read_text() == pointer_text
    _assert_complete(ImageSet(before.folder, before.fingerprint), 24)
    finished, scratch = _entries(before.folder.parent)
    assert finished == [before.folder.name], "a half-written version became visible"
    assert len(scratch) == 1, "the killed writer's scratch folder should be all it left"

    after: ImageSet = materialize(env, SELECTION, _config(32)).output_for_node("image_arrays")
    _assert_complete(after, 32)
    assert json.loads(pointer.read_text())["fingerprint"] == after.fingerprint
    assert _entries(before.folder.parent) == (sorted([before.folder.name, after.folder.name]), []), \
        "the abandoned scratch folder was not cleaned up"


def test_two_runs_writing_the_same_asset_at_once(tmp_path: Path) -> None:
    faces, data = tmp_path / "faces", tmp_path / "data"
    write_utkface(faces, n=60)
    writers = [_start(data, faces, 32, tmp_path / f"midway-{i}", tmp_path / "go") for i in range(2)]
    for i, writer in enumerate(writers):
        _wait_for(tmp_path / f"midway-{i}", writer)
    assert len(_entries(data / "artifacts" / "image_arrays")[1]) == 2, "both runs should be mid-write together"
    (tmp_path / "go").touch()
    for writer in writers:
        out, _ = writer.communicate(timeout=300)
        assert writer.returncode == 0, out.decode()[-3000:]

    finished, scratch = _entries(data / "artifacts" / "image_arrays")
    assert len(finished) == 1 and scratch == []
    record = json.loads((data / "pointers" / "image_arrays.json").read_text())
    assert record["folder"].endswith(finished[0])
    _assert_complete(ImageSet(data / record["folder"], record["fingerprint"]), 32)


def _start_loading(data: Path, faces: Path, size: int, tmp_path: Path, selection: str,
                   env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "age_assets_tests.materialize_paused", str(data), str(faces), str(size),
         str(tmp_path / "paused"), str(tmp_path / "release"), "loading", selection],
        cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        env={**os.environ, **(env or {})},
    )


def _finish(process: subprocess.Popen, tmp_path: Path) -> None:
    (tmp_path / "release").touch()
    out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out.decode()[-3000:]


def _augmented_size(data: Path) -> int:
    record = json.loads((data / "pointers" / "augmented_train.json").read_text())
    return ImageSet(data / record["folder"], record["fingerprint"]).images("train").shape[1]


def test_a_run_reads_the_upstream_it_built_while_another_run_rebuilds_it(
    materialize: Materialize, tmp_path: Path
) -> None:
    faces, data = tmp_path / "faces", tmp_path / "data"
    write_utkface(faces, n=60)
    mine = _start_loading(data, faces, 24, tmp_path, "raw_dataset,image_arrays,augmented_train")
    _wait_for(tmp_path / "paused", mine)  # it built image_arrays at 24 px and is about to read it
    other = materialize({"AGE_ASSETS_DATASET": f"utkface:{faces}"}, SELECTION, _config(32))
    latest = json.loads((data / "pointers" / "image_arrays.json").read_text())
    assert latest["fingerprint"] == other.output_for_node("image_arrays").fingerprint, "the latest is 32 px"
    _finish(mine, tmp_path)
    assert _augmented_size(data) == 24, "the run read the 32 px arrays another run built meanwhile"


def test_a_run_reads_the_upstream_current_when_it_started(tmp_path: Path) -> None:
    """image_arrays is outside the run: the version before the run started, from the event log."""
    faces, data, home = tmp_path / "faces", tmp_path / "data", tmp_path / "dagster"
    write_utkface(faces, n=60)
    home.mkdir()
    settings = {"AGE_ASSETS_DATA_DIR": str(data), "AGE_ASSETS_DATASET": f"utkface:{faces}"}
    defs = build_defs(settings)

    def build_image_arrays(size: int) -> None:
        with dg.DagsterInstance.local_temp(str(home)) as instance:
            assert dg.materialize(list(defs.assets), resources=defs.resources, selection=SELECTION.split(","),
                                  run_config=_config(size), instance=instance).success

    build_image_arrays(24)
    later = _start_loading(data, faces, 24, tmp_path, "augmented_train", {"DAGSTER_HOME": str(home)})
    _wait_for(tmp_path / "paused", later)
    build_image_arrays(32)
    _finish(later, tmp_path)
    assert _augmented_size(data) == 24, "the run read a version materialized after it started"


def _kill_when_paused(harness: str, folder: Path, pause: str) -> None:
    """Run ``age_assets_tests.<harness> FOLDER PAUSE``, and SIGKILL it once it has paused."""
    process = subprocess.Popen([sys.executable, "-m", f"age_assets_tests.{harness}", str(folder), pause],
                               cwd=Path(__file__).resolve().parents[1], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT)
    _wait_for(folder / "paused", process)
    os.kill(process.pid, signal.SIGKILL)
    assert process.wait(timeout=30) == -signal.SIGKILL


@pytest.mark.shared
def test_training_killed_after_an_epoch_resumes_at_the_next(tmp_path: Path) -> None:
    from age_assets_tests.train_killable import EPOCHS, train

    _kill_when_paused("train_killable", tmp_path, "2")
    before = [json.loads(line) for line in (tmp_path / "epochs.jsonl").read_text().splitlines()]
    assert len(before) == 2

    lines: list[str] = []
    trained = train(tmp_path, log=lines.append)
    assert any(line.startswith("resuming at epoch 3") for line in lines), lines
    assert len(trained.history["loss"]) == EPOCHS, "the history holds the epochs before the kill too"
    assert trained.history["loss"][:2] == pytest.approx([e["loss"] for e in before], rel=1e-6)
    assert not (tmp_path / "checkpoints").exists(), "a finished training leaves no checkpoint"


@pytest.mark.shared
def test_a_feature_pass_killed_part_way_resumes_at_its_last_saved_part(tmp_path: Path) -> None:
    from age_assets_tests.features_killable import IMAGES, run

    _kill_when_paused("features_killable", tmp_path, "40")
    assert len(list((tmp_path / "parts").glob("*.npz"))) == 2, "two parts of 16 saved before the kill at 40"

    lines: list[str] = []
    run(tmp_path, tmp_path / "resumed", log=lines.append)
    assert lines == [f"resuming the feature pass of faces.npy at image 32 of {IMAGES}: 2 of 7 parts were saved"]
    assert not (tmp_path / "parts").exists()
    unbroken = tmp_path / "unbroken"
    unbroken.mkdir()
    run(unbroken, unbroken / "out")
    resumed, whole = np.load(tmp_path / "resumed" / "train_0.npy"), np.load(unbroken / "out" / "train_0.npy")
    assert resumed.shape[0] == IMAGES and np.array_equal(resumed, whole)
