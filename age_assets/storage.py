"""Content-addressed artifact folders, written atomically.

Every artifact lives in a folder named by a fingerprint of what produced it (parameters, code
version, inputs' fingerprints). A folder is built under a temporary name beside its target and
renamed into place only when complete, so a reader sees either the whole artifact or none of it,
and an identical rerun finds the finished folder and reuses it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def fingerprint(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts (paths and other objects via ``str``)."""
    blob = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Yield a scratch folder that becomes ``target`` when the block finishes without error.

    If another writer finished the same target first, its folder wins and ours is discarded: both
    were built from the same inputs, so either is correct, and no reader ever sees a mix.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.parent / f"{_scratch_prefix(target)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    try:
        yield scratch
        try:
            os.rename(scratch, target)
        except OSError:
            if not target.is_dir():
                raise
            shutil.rmtree(scratch)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _scratch_prefix(target: Path) -> str:
    """The start of every scratch folder name for ``target`` written on this host; the writer's
    pid and a random part follow."""
    return f".{target.name}.tmp-{socket.gethostname()}-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, run by another user
        return True
    return True


def remove_abandoned_scratch(target: Path) -> list[Path]:
    """Delete scratch folders for ``target`` left by killed processes of this host; return them.

    A writer killed mid-artifact (SIGKILL, out of memory) cannot clean up after itself, and a
    half-built augmented set is gigabytes. Scratch of a live process, or of another host sharing
    the storage, is left alone.
    """
    prefix = _scratch_prefix(target)
    removed = []
    for scratch in target.parent.glob(f"{prefix}*"):
        pid = scratch.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(scratch, ignore_errors=True)
            removed.append(scratch)
    return removed


def atomic_write_text(path: Path, text: str) -> None:
    """Write a small text file beside ``path`` and rename it into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    scratch = path.parent / f".{path.name}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        scratch.write_text(text)
        os.replace(scratch, path)
    finally:
        scratch.unlink(missing_ok=True)


def bytes_on_disk(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (apparent sizes)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


SPARE_BYTES = 256 * 2**20
"""Free space a large write must leave on its disk."""


class NotEnoughSpace(OSError):
    """A large write would not fit on its disk; raised before anything is written."""


def require_free_space(folder: Path, needed: int, what: str) -> None:
    """Fail before writing ``needed`` bytes into ``folder`` if they would not fit, with ``SPARE_BYTES`` left."""
    existing = Path(folder)
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    free = shutil.disk_usage(existing).free
    if free < needed + SPARE_BYTES:
        raise NotEnoughSpace(
            f"{what} needs {needed / 1e9:.2f} GB in {folder}, but {free / 1e9:.2f} GB are free there "
            f"({SPARE_BYTES // 2**20} MB must stay free). Free some space (age-assets gc lists old versions "
            f"to remove) or point AGE_ASSETS_DATA_DIR at a larger disk"
        )


def build_once(target: Path, build: Callable[[Path], None]) -> bool:
    """Build ``target`` with ``build(scratch_folder)`` unless it exists; return whether it existed.

    Since folders are named by fingerprints, an existing folder is the finished result of the same
    inputs and parameters: reusing it is what makes an unchanged rerun take seconds.
    """
    if target.is_dir():
        return True
    remove_abandoned_scratch(target)
    with atomic_dir(target) as scratch:
        build(scratch)
    return False


POINTERS = "pointers"
"""Under the storage root: one ``<asset>.json`` per asset naming its latest artifact folder, and
``runs/<run id>/<asset>.json`` naming what each run materialized."""


@dataclass(frozen=True)
class Pointer:
    """What a pointer file says: the handle type, the folder under the root, the fingerprint."""

    type: str
    folder: Path
    fingerprint: str

    @staticmethod
    def path(root: Path, asset: str, run_id: str | None = None) -> Path:
        """``pointers/<asset>.json``, or with ``run_id`` the one that run wrote."""
        folder = Path(root) / POINTERS
        return (folder / "runs" / run_id if run_id else folder) / f"{asset}.json"

    @classmethod
    def read(cls, root: Path, asset: str, run_id: str | None = None) -> Pointer | None:
        """The asset's pointer (of ``run_id`` where given), or None where there is none."""
        path = cls.path(root, asset, run_id)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        return cls(record["type"], Path(root).resolve() / record["folder"], record["fingerprint"])

    def text(self, root: Path) -> str:
        return json.dumps({"type": self.type, "folder": str(self.folder.relative_to(Path(root).resolve())),
                           "fingerprint": self.fingerprint}, indent=1)
