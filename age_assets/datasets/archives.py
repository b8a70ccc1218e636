"""Archive extraction that refuses entries escaping the target folder."""

from __future__ import annotations

import stat
import tarfile
import zipfile
from pathlib import Path, PurePosixPath

from age_assets.storage import atomic_dir


class UnsafeArchiveError(ValueError):
    """An archive entry would land outside the extraction folder."""


def _check_zip_entry(archive: Path, info: zipfile.ZipInfo) -> None:
    name = info.filename.replace("\\", "/")
    parts = PurePosixPath(name).parts
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in parts:
        raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} points outside the archive folder")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise UnsafeArchiveError(f"{archive}: entry {info.filename!r} is a symbolic link")


def extract_archive(archive: Path, target: Path) -> Path:
    """Extract a .zip or tar archive into ``target`` (atomically); reuse ``target`` if present.

    Zip entries with absolute paths, ``..`` or symbolic links are refused outright (zipfile would
    silently rewrite them). Tar archives go through tarfile's ``data`` filter, which refuses the
    same and more.
    """
    archive, target = Path(archive), Path(target)
    if target.is_dir():
        return target
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for info in zf.infolist():
                _check_zip_entry(archive, info)
            with atomic_dir(target) as scratch:
                zf.extractall(scratch)
    elif tarfile.is_tarfile(archive):
        with tarfile.open(archive) as tf, atomic_dir(target) as scratch:
            try:
                tf.extractall(scratch, filter="data")
            except tarfile.FilterError as error:
                raise UnsafeArchiveError(f"{archive}: {error}") from error
    else:
        raise ValueError(f"{archive} is neither a zip nor a tar archive")
    return target
