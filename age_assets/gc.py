"""``age-assets gc``: list, and with ``--apply`` remove, old artifact versions and stale run pointers."""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
from pathlib import Path

from age_assets import retention
from age_assets.storage import bytes_on_disk


def _running(root: Path) -> tuple[list[str] | None, list[Path]]:
    """Running runs and what they read, from the Dagster instance at DAGSTER_HOME; (None, []) without one,
    or without Dagster (the plain install)."""
    if not os.environ.get("DAGSTER_HOME") or importlib.util.find_spec("dagster") is None:
        return None, []
    import dagster as dg

    from age_assets.io_managers import running_runs

    with dg.DagsterInstance.get() as instance:
        return running_runs(instance, root)


def gc(args: argparse.Namespace) -> int:
    root = Path(args.data_dir).resolve()
    if not (root / "artifacts").is_dir():
        raise SystemExit(f"age-assets gc: no artifacts under {root}")
    running, pinned = _running(root)
    found = retention.versions(root)
    chosen = retention.removable(found, args.keep, retention.in_use(root, running, pinned))
    stale = [] if running is None else [p for run, p in retention.run_pointer_folders(root).items()
                                         if run not in running]
    cache = root / "cache"
    verb = "removing" if args.apply else "would remove"
    print(f"{'asset':30} {'versions':>8} {'on disk':>10} {verb:>14}")
    for asset, listed in found.items():
        gone = [v for v in chosen if v.asset == asset]
        print(f"{asset:30} {len(listed):8d} {retention.gigabytes(sum(v.bytes for v in listed)):>10} "
              f"{retention.gigabytes(sum(v.bytes for v in gone)):>14}")
    total = sum(v.bytes for v in chosen)
    print(f"{verb} {len(chosen)} version(s), {retention.gigabytes(total)}, keeping the newest {args.keep} of each "
          f"asset and every version in use" + ("" if running is not None else
          " (DAGSTER_HOME is unset: every run's pointers count as in use)"))
    if cache.is_dir():
        print(f"feature cache {cache}: {retention.gigabytes(bytes_on_disk(cache))}"
              + ("; --clear-cache removes it" if not args.clear_cache else ""))
    if not args.apply:
        print("nothing removed: add --apply")
        return 0
    retention.remove(chosen)
    for folder in stale:
        shutil.rmtree(folder)
    if args.clear_cache and cache.is_dir():
        if running is None or running:
            raise SystemExit("age-assets gc: the feature cache stays while runs may be using it "
                             "(set DAGSTER_HOME, and clear it when no run is going)")
        shutil.rmtree(cache)
        print(f"removed the feature cache {cache}")
    return 0


def add_parser(commands: argparse._SubParsersAction) -> None:
    g = commands.add_parser("gc", help="list (and with --apply remove) old artifact versions under the data dir")
    g.add_argument("--data-dir", default=os.environ.get("AGE_ASSETS_DATA_DIR", "data"),
                   help="storage root (default: AGE_ASSETS_DATA_DIR or data)")
    g.add_argument("--keep", type=int, default=2, help="newest versions kept per asset (default %(default)s)")
    g.add_argument("--apply", action="store_true", help="remove; without it nothing changes")
    g.add_argument("--clear-cache", action="store_true", help="with --apply: also remove the feature cache")
