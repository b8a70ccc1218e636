"""Dataset sources named by a short spec: ``appa-real``, ``appa-real:PATH``, ``utkface:PATH`` or ``fgnet:PATH``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from age_assets.datasets.appa_real import read_appa_real
from age_assets.datasets.archives import extract_archive
from age_assets.datasets.download import DownloadError, Progress, download
from age_assets.datasets.fgnet import read_fgnet
from age_assets.datasets.manifest import Skip, file_stats
from age_assets.datasets.utkface import read_utkface
from age_assets.storage import fingerprint

KINDS = ("appa-real", "utkface", "fgnet")
FOLDER_READERS = {"utkface": read_utkface, "fgnet": read_fgnet}
"""Sources that are a folder on disk, and their readers."""


class DatasetUnavailable(RuntimeError):
    """The configured dataset cannot be read or fetched; the message says how to fix it."""


@dataclass(frozen=True)
class SourceSpec:
    kind: str
    path: Path | None = None

    @classmethod
    def parse(cls, spec: str) -> SourceSpec:
        kind, _, path = spec.strip().partition(":")
        if kind not in KINDS:
            raise ValueError(
                f"unknown dataset {spec!r}: use 'appa-real' (download), 'appa-real:/path/to/archive-or-folder' "
                "'utkface:/path/to/folder' or 'fgnet:/path/to/folder' (whole photos)"
            )
        if kind in FOLDER_READERS and not path:
            raise ValueError(f"a {kind} source needs its folder: '{kind}:/path/to/folder'")
        return cls(kind, Path(os.path.abspath(Path(path).expanduser())) if path else None)

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}" if self.path else self.kind


@dataclass(frozen=True)
class Download:
    """Where the default APPA-REAL source comes from."""

    url: str
    checksum: str | None
    retries: int = 4


def _appa_real_folder(spec: SourceSpec, workdir: Path, fetch: Download, progress: Progress | None) -> Path:
    if spec.path is None:
        archive = workdir / "downloads" / Path(fetch.url).name
        try:
            download(fetch.url, archive, fetch.checksum, progress, retries=fetch.retries)
        except DownloadError as error:
            raise DatasetUnavailable(
                f"could not download APPA-REAL ({error}). Without internet, point AGE_ASSETS_DATASET at a copy "
                "on disk: 'appa-real:/path/to/appa-real-release.zip' (or its extracted folder), or at a "
                "UTKFace folder: 'utkface:/path/to/UTKFace'"
            ) from error
        folder = f"{archive.stem}-{fetch.checksum or 'unverified'}".replace(":", "-")
        return extract_archive(archive, workdir / "extracted" / folder)
    if spec.path.is_dir():
        return spec.path
    if spec.path.is_file():
        stat = spec.path.stat()
        tag = fingerprint(str(spec.path.resolve()), stat.st_size, stat.st_mtime_ns)
        return extract_archive(spec.path, workdir / "extracted" / f"{spec.path.stem}-{tag}")
    raise DatasetUnavailable(f"APPA-REAL source {spec.path} does not exist")


def read_source(
    spec: SourceSpec,
    workdir: Path,
    fetch: Download,
    split: str | None = None,
    progress: Progress | None = None,
) -> tuple[pd.DataFrame, list[Skip]]:
    """The manifest of a source, downloading and extracting it under ``workdir`` as needed.

    ``split`` puts every image of the source into that one split (used for a custom test set).
    """
    if spec.kind in FOLDER_READERS:
        assert spec.path is not None
        return FOLDER_READERS[spec.kind](spec.path, split)
    return read_appa_real(_appa_real_folder(spec, workdir, fetch, progress), split)


def source_state(spec: SourceSpec, fetch: Download) -> str:
    """A fingerprint that changes when the source's files do: names, sizes and modification times.

    Cheap enough to poll (a stat per file, no reading). The default download is named by its URL
    and checksum, as the server is not polled.
    """
    if spec.path is None:
        return fingerprint(str(spec), fetch.url, fetch.checksum)
    if spec.path.is_file():
        return fingerprint(str(spec), file_stats([spec.path]))
    if spec.path.is_dir():
        return fingerprint(str(spec), file_stats(sorted(p for p in spec.path.rglob("*") if p.is_file())))
    return fingerprint(str(spec), "missing")
