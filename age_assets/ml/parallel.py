"""An ordered parallel map with a bounded number of results in flight."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(fn: Callable[[T], R], items: Iterable[T], workers: int, window: int = 64) -> Iterator[R]:
    """``map(fn, items)`` on a thread pool, in order, holding at most ``window`` results.

    Threads suit the work here: PIL decoding and resizing and OpenCV warps release the GIL. The
    window keeps memory flat however many items there are.
    """
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        pending: deque[Future[R]] = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
