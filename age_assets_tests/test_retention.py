"""Old artifact versions go only when asked, never one in use; large writes check the disk first."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections import namedtuple
from pathlib import Path

import pytest

from age_assets.cli import main
from age_assets.definitions import keep_versions_from
from age_assets.ml.npy import StackWriter
from age_assets.storage import NotEnoughSpace
from age_assets_tests.conftest import Materialize, write_utkface


def _version(root: Path, asset: str, name: str, megabytes: int, age_s: float) -> Path:
    folder = root / "artifacts" / asset / name
    folder.mkdir(parents=True)
    (folder / "data.bin").write_bytes(b"\0" * megabytes * 10**6)
    os.utime(folder, (os.path.getmtime(folder) - age_s,) * 2)
    return folder


def _point(path: Path, root: Path, folder: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"type": "ImageSet", "folder": str(folder.relative_to(root)),
                                "fingerprint": folder.name}))


def test_gc_lists_by_default_and_removes_with_apply_only_what_nothing_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    root = tmp_path / "data"
    newest = _version(root, "image_arrays", "d", 1, age_s=0)
    by_pointer = _version(root, "image_arrays", "a", 2, age_s=400)
    by_run = _version(root, "image_arrays", "b", 3, age_s=300)
    unused = _version(root, "image_arrays", "c", 4, age_s=200)
    _point(root / "pointers" / "image_arrays.json", root, by_pointer)
    _point(root / "pointers" / "runs" / "some-run" / "image_arrays.json", root, by_run)

    assert main(["gc", "--data-dir", str(root), "--keep", "1"]) == 0
    listing = capsys.readouterr().out
    assert "would remove 1 version(s), 0.00 GB" in listing and "nothing removed: add --apply" in listing
    assert unused.is_dir(), "a dry run removes nothing"

    assert main(["gc", "--data-dir", str(root), "--keep", "1", "--apply"]) == 0
    assert "removing 1 version(s)" in capsys.readouterr().out
    assert not unused.exists()
    assert newest.is_dir() and by_pointer.is_dir() and by_run.is_dir(), "kept: the newest, a pointer's, a run's"


def test_keep_versions_removes_old_versions_after_each_materialization(
    materialize: Materialize, tmp_path: Path
) -> None:
    faces = tmp_path / "faces"
    write_utkface(faces, n=30)
    env = {"AGE_ASSETS_DATASET": f"utkface:{faces}", "AGE_ASSETS_KEEP_VERSIONS": "1"}
    for size in (24, 32):
        last = materialize(env, "raw_dataset,image_arrays", {"ops": {"image_arrays": {"config": {"image_size": size}}}})
    versions = [p for p in (tmp_path / "data" / "artifacts" / "image_arrays").iterdir()]
    assert versions == [last.output_for_node("image_arrays").folder], "the 24 px version should be gone"


Usage = namedtuple("Usage", "total used free")


def test_a_large_write_that_would_not_fit_fails_first_naming_the_folder_and_the_space(
    materialize: Materialize, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 10**12 - 10**8, 10**8))
    with pytest.raises(NotEnoughSpace, match=rf"writing big.npy needs 1.50 GB in {tmp_path}, but 0.10 GB are free"):
        StackWriter(tmp_path / "big.npy", 500, (1000, 1000, 3))
    assert not (tmp_path / "big.npy").exists()

    faces = tmp_path / "faces"
    write_utkface(faces, n=30)
    monkeypatch.setattr(shutil, "disk_usage", lambda path: Usage(10**12, 10**12, 0))
    result = materialize({"AGE_ASSETS_DATASET": f"utkface:{faces}"}, "raw_dataset,image_arrays",
                         raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure and e.step_key == "image_arrays")
    message = failure.step_failure_data.error.to_string()
    assert "NotEnoughSpace" in message and "image_arrays" in message and "age-assets gc" in message
    assert not any((tmp_path / "data" / "artifacts" / "image_arrays").iterdir()), "nothing was left behind"


def test_keep_versions_reads_empty_as_all_and_names_the_variable_when_it_is_not_a_number() -> None:
    assert keep_versions_from({}) == 0
    assert keep_versions_from({"AGE_ASSETS_KEEP_VERSIONS": ""}) == 0
    assert keep_versions_from({"AGE_ASSETS_KEEP_VERSIONS": " 3 "}) == 3
    for bad in ("two", "-1", "1.5", "\u00b2"):
        with pytest.raises(ValueError, match=rf"AGE_ASSETS_KEEP_VERSIONS='{re.escape(bad)}': give a whole number"):
            keep_versions_from({"AGE_ASSETS_KEEP_VERSIONS": bad})
