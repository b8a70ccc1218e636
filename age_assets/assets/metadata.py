"""Helpers that turn plain results into the metadata shown in the Dagster UI."""

from __future__ import annotations

import base64
import resource
import time
from collections.abc import Callable

import dagster as dg

from age_assets.datasets.manifest import Skip


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (each step's own under the multiprocess executor).

    Read from ``VmHWM`` where Linux has it: ``ru_maxrss`` survives fork and exec, so a step process
    would report its parent's peak whenever that was higher.
    """
    try:
        with open("/proc/self/status") as status:
            kb = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def png(image: bytes, title: str) -> dg.MetadataValue:
    """An inline PNG, shown by the UI's markdown renderer."""
    return dg.MetadataValue.md(f"![{title}](data:image/png;base64,{base64.b64encode(image).decode()})")


def skipped_table(skipped: list[Skip], limit: int = 200) -> dg.MetadataValue:
    lines = ["| file | reason |", "|---|---|"]
    lines += [f"| `{s.path}` | {s.reason} |" for s in skipped[:limit]]
    if len(skipped) > limit:
        lines.append(f"| … | {len(skipped) - limit} more |")
    return dg.MetadataValue.md("\n".join(lines) if skipped else "none")


def check_skipped_share(skipped: list[Skip], total: int, limit: float, what: str) -> None:
    """Fail when more than ``limit`` of ``total`` inputs were skipped, listing them."""
    if total and len(skipped) / total > limit:
        listing = "\n".join(f"  {s.path}: {s.reason}" for s in skipped[:50])
        raise dg.Failure(
            f"{len(skipped)} of {total} {what} were skipped, more than the allowed share {limit:.1%}:\n{listing}",
            metadata={"skipped": skipped_table(skipped)},
        )


def progress_logger(log: dg.DagsterLogManager, what: str, every_s: float = 10.0) -> Callable[[int, int | None], None]:
    """A progress callback that logs at most every ``every_s`` seconds, and at the end."""
    last = [0.0]

    def report(done: int, total: int | None) -> None:
        now = time.monotonic()
        if now - last[0] < every_s and done != total:
            return
        last[0] = now
        share = f" of {total / 1e6:.1f} MB ({done / total:.0%})" if total else ""
        log.info(f"{what}: {done / 1e6:.1f} MB{share}")

    return report
