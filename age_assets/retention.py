"""Which artifact versions may go: every version but the newest few of each asset, never one that a
pointer names or a running run may still read. No Dagster here: callers say which runs are running
and which versions those runs took from before they started."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from age_assets.storage import POINTERS, Pointer, bytes_on_disk


@dataclass(frozen=True)
class Version:
    asset: str
    folder: Path
    bytes: int
    modified: float


def versions(root: Path) -> dict[str, list[Version]]:
    """Every finished version under ``<root>/artifacts``, per asset, newest first (scratch folders,
    whose names start with a dot, are left to their writers)."""
    found: dict[str, list[Version]] = {}
    for asset in sorted(p for p in (root / "artifacts").glob("*") if p.is_dir()):
        folders = [f for f in asset.iterdir() if f.is_dir() and not f.name.startswith(".")]
        found[asset.name] = sorted((Version(asset.name, f, bytes_on_disk(f), f.stat().st_mtime) for f in folders),
                                   key=lambda v: v.modified, reverse=True)
    return found


def run_pointer_folders(root: Path) -> dict[str, Path]:
    """Run id -> the folder of the pointers that run wrote."""
    runs = root / POINTERS / "runs"
    return {p.name: p for p in runs.iterdir() if p.is_dir()} if runs.is_dir() else {}


def in_use(root: Path, running: Iterable[str] | None, pinned: Iterable[Path] = ()) -> set[Path]:
    """Folders no one may remove: what the latest pointers name, what running runs wrote, and
    ``pinned`` (what running runs read from before they started). ``running`` None means the
    running runs are unknown: then every run's pointers count."""
    folders = {p.resolve() for p in pinned}
    runs = run_pointer_folders(root)
    pointer_files = list((root / POINTERS).glob("*.json"))
    for run_id, folder in runs.items():
        if running is None or run_id in set(running):
            pointer_files += folder.glob("*.json")
    for path in pointer_files:
        pointer = Pointer.read(root, path.stem, path.parent.name if path.parent.parent.name == "runs" else None)
        if pointer is not None:
            folders.add(pointer.folder.resolve())
    return folders


def removable(found: dict[str, list[Version]], keep: int, used: set[Path]) -> list[Version]:
    """Per asset, the versions beyond its newest ``keep`` that nothing uses."""
    return [v for listed in found.values() for v in listed[keep:] if v.folder.resolve() not in used]


def remove(chosen: Iterable[Version]) -> int:
    """Delete the versions; the bytes freed."""
    freed = 0
    for version in chosen:
        shutil.rmtree(version.folder)
        freed += version.bytes
    return freed


def gigabytes(n: int) -> str:
    return f"{n / 1e9:.2f} GB"
