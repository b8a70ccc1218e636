"""HTTP download with resume, retries with backoff, progress reports and a checksum."""

from __future__ import annotations

import hashlib
import http.client
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

Progress = Callable[[int, int | None], None]
"""Called with (bytes so far, total bytes or None) as a download proceeds."""

CHUNK = 1 << 20


class DownloadError(RuntimeError):
    """A download that could not be completed; the message says which URL and why."""


def file_checksum(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: Path, checksum: str) -> None:
    """Raise if ``path`` does not match ``checksum``, written ``algorithm:hexdigest``."""
    algorithm, _, expected = checksum.partition(":")
    if not expected:
        raise ValueError(f"checksum {checksum!r} is not of the form 'sha256:<hex>'")
    actual = file_checksum(path, algorithm)
    if actual != expected.lower():
        raise DownloadError(f"{path}: {algorithm} is {actual}, expected {expected}")


def _fetch_once(url: str, part: Path, progress: Progress | None, timeout: float) -> None:
    """Append the rest of ``url`` to ``part``, starting where an earlier attempt stopped."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        if error.code == 416 and have:  # nothing left to fetch: the part file is complete
            return
        raise
    with response:
        if response.status == 206:
            mode, done = "ab", have
        else:  # the server ignored the range: start over
            mode, done = "wb", 0
        length = response.headers.get("Content-Length")
        total = done + int(length) if length is not None else None
        with open(part, mode) as f:
            while block := response.read(CHUNK):
                f.write(block)
                done += len(block)
                if progress:
                    progress(done, total)
    if total is not None and done < total:
        raise http.client.IncompleteRead(b"", total - done)


def download(
    url: str,
    dest: Path,
    checksum: str | None = None,
    progress: Progress | None = None,
    retries: int = 4,
    backoff_s: float = 2.0,
    timeout_s: float = 60.0,
) -> Path:
    """Download ``url`` to ``dest`` unless a verified copy is already there.

    Bytes go to ``dest.part`` first; a cut transfer or server error is retried ``retries`` times
    with exponential backoff, each retry resuming from the bytes already on disk. A checksum
    mismatch removes the partial file, so the next try starts clean. ``dest`` appears only when
    the whole file is there and verified.
    """
    dest = Path(dest)
    if dest.exists() and checksum is None:
        return dest
    if dest.exists() and checksum is not None:
        try:
            verify_checksum(dest, checksum)
            return dest
        except DownloadError:
            dest.unlink()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch_once(url, part, progress, timeout_s)
            break
        except urllib.error.HTTPError as error:
            if error.code < 500 or attempt == retries:
                raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from error
        except (urllib.error.URLError, OSError, http.client.HTTPException) as error:
            if attempt == retries:
                raise DownloadError(f"{url}: {getattr(error, 'reason', error)}") from error
        time.sleep(backoff_s * 2**attempt)
    if checksum is not None:
        try:
            verify_checksum(part, checksum)
        except DownloadError as error:
            part.unlink(missing_ok=True)
            raise DownloadError(f"{url}: checksum mismatch ({error}); the partial file was removed") from None
    os.replace(part, dest)
    return dest
