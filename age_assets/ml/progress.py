"""Progress of long loops (decoding, augmentation, feature passes, epochs) in a log, without flooding it."""

from __future__ import annotations

import time
from collections.abc import Callable

Log = Callable[[str], None]

EVERY_S = 30.0
"""Seconds between two progress lines of one loop."""


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Counts work done and logs ``what: done/total (share), rate, time left`` at most every
    ``every_s`` seconds, and once when the count reaches ``total``."""

    def __init__(self, log: Log, what: str, total: int, unit: str = "images", every_s: float = EVERY_S,
                 clock: Callable[[], float] = time.monotonic):
        self.log, self.what, self.total, self.unit, self.every_s, self.clock = log, what, total, unit, every_s, clock
        self.done = 0
        self.started = self.last = clock()

    def advance(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self.last < self.every_s and self.done < self.total:
            return
        self.last = now
        elapsed = max(now - self.started, 1e-9)
        rate = self.done / elapsed
        line = f"{self.what}: {self.done:,}/{self.total:,} {self.unit} ({self.done / max(self.total, 1):.0%}), "
        if self.done >= self.total:
            self.log(line + f"done in {duration(elapsed)} ({rate:,.1f} {self.unit}/s)")
        else:
            self.log(line + f"{rate:,.1f} {self.unit}/s, about {duration((self.total - self.done) / rate)} left")


def no_progress(done: int = 1) -> None:
    """Stands in for ``Progress.advance`` where nobody listens."""
