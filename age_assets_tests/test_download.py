"""Download, resume and checksum against a local HTTP server on 127.0.0.1."""

import hashlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from age_assets.datasets.download import DownloadError, download
from age_assets.datasets.sources import DatasetUnavailable, Download, SourceSpec, read_source


@dataclass
class Archive:
    """What the server sends, and a record of what it was asked."""

    payload: bytes
    cut_after: int | None = None  # the first full response stops after this many bytes
    failures: int = 0  # answer this many requests with 503 first
    ranges: list[str | None] = field(default_factory=list)


@pytest.fixture
def server() -> Iterator[tuple[str, Archive]]:
    archive = Archive(b"")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            header = self.headers.get("Range")
            archive.ranges.append(header)
            if archive.failures:
                archive.failures -= 1
                self.send_error(503)
                return
            start = int(header.removeprefix("bytes=").removesuffix("-")) if header else 0
            body = archive.payload[start:]
            self.send_response(206 if header else 200)
            self.send_header("Content-Length", str(len(body)))
            if header:
                self.send_header("Content-Range", f"bytes {start}-{len(archive.payload) - 1}/{len(archive.payload)}")
            self.end_headers()
            if archive.cut_after is not None and not header:
                self.wfile.write(body[: archive.cut_after])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/appa-real-release.zip", archive
    httpd.shutdown()
    httpd.server_close()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def test_download_verifies_and_reports_progress(server, tmp_path: Path) -> None:
    url, archive = server
    archive.payload = bytes(range(256)) * 12000
    seen: list[tuple[int, int | None]] = []
    dest = download(url, tmp_path / "a.zip", sha256(archive.payload), lambda d, t: seen.append((d, t)))
    assert dest.read_bytes() == archive.payload
    assert seen[-1] == (len(archive.payload), len(archive.payload))
    assert not (tmp_path / "a.zip.part").exists()
    download(url, dest, sha256(archive.payload))
    assert len(archive.ranges) == 1, "a verified file is not fetched again"


def test_cut_transfer_resumes_where_it_stopped(server, tmp_path: Path) -> None:
    url, archive = server
    archive.payload = b"0123456789" * 300_000
    archive.cut_after = 1_000_000
    dest = download(url, tmp_path / "a.zip", sha256(archive.payload), backoff_s=0.01)
    assert dest.read_bytes() == archive.payload
    assert archive.ranges == [None, "bytes=1000000-"]


def test_server_errors_are_retried_then_reported(server, tmp_path: Path) -> None:
    url, archive = server
    archive.payload = b"payload"
    archive.failures = 2
    assert download(url, tmp_path / "a.zip", sha256(b"payload"), backoff_s=0.01).read_bytes() == b"payload"
    archive.failures = 10
    with pytest.raises(DownloadError, match="HTTP 503"):
        download(url, tmp_path / "b.zip", None, retries=2, backoff_s=0.01)
    assert len(archive.ranges) == 3 + 3


def test_wrong_checksum_removes_the_partial_file(server, tmp_path: Path) -> None:
    url, archive = server
    archive.payload = b"x" * 5000
    with pytest.raises(DownloadError, match="checksum mismatch.*removed"):
        download(url, tmp_path / "a.zip", sha256(b"something else"))
    assert list(tmp_path.iterdir()) == []


def test_default_source_without_network_says_how_to_use_a_local_copy(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}/appa-real-release.zip"
    with pytest.raises(DatasetUnavailable) as error:
        read_source(SourceSpec.parse("appa-real"), tmp_path, Download(closed, None, retries=0))
    message = str(error.value)
    assert "appa-real:/path/to/appa-real-release.zip" in message and "utkface:" in message
    assert closed in message


def test_downloaded_release_becomes_a_manifest(server, tmp_path: Path, appa_real_zip: Path) -> None:
    url, archive = server
    archive.payload = appa_real_zip.read_bytes()
    table, _ = read_source(SourceSpec.parse("appa-real"), tmp_path / "work", Download(url, sha256(archive.payload)))
    assert len(table) == 24
    assert (tmp_path / "work" / "downloads" / "appa-real-release.zip").is_file()


@pytest.mark.parametrize("spec, message", [
    ("imdb", "unknown dataset"), ("utkface", "needs its folder"), ("utkface:", "needs its folder"),
])
def test_bad_source_spec_is_explained(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SourceSpec.parse(spec)
