"""The model a server answers with, and, where it follows the promoted model, its replacement.

A request takes the current model once and keeps it to the end: a newly promoted model is loaded
beside the old one and swapped in between requests, so no request in flight loses its model, and
a model that fails to load leaves the old one serving.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import anyio
from starlette.concurrency import run_in_threadpool

logger = logging.getLogger(__name__)

E = TypeVar("E")

Locate = Callable[[], tuple[Path, str]]
"""Where the model to serve is now: its file and its export's fingerprint."""


@dataclass(frozen=True)
class ServedModel(Generic[E]):
    estimator: E
    path: Path | None
    fingerprint: str | None


class FollowedModel(Generic[E]):
    """``current``: the model to answer with; with ``locate``, ``refresh`` replaces it when
    ``locate`` names another one, and ``watch`` does so every ``interval_s``."""

    def __init__(self, current: ServedModel[E], locate: Locate | None = None,
                 load: Callable[[Path], E] | None = None, interval_s: float = 2.0) -> None:
        self.current = current
        self._locate, self._load, self.interval_s = locate, load, interval_s

    @classmethod
    def follow(cls, locate: Locate, load: Callable[[Path], E], interval_s: float = 2.0) -> FollowedModel[E]:
        path, fingerprint = locate()
        return cls(ServedModel(load(path), path, fingerprint), locate, load, interval_s)

    @property
    def follows(self) -> bool:
        return self._locate is not None

    def refresh(self) -> bool:
        """Load and swap in the model ``locate`` names if it changed; whether it did."""
        if self._locate is None or self._load is None:
            return False
        try:
            path, fingerprint = self._locate()
            if (path, fingerprint) == (self.current.path, self.current.fingerprint):
                return False
            estimator = self._load(path)
        except Exception:  # a damaged or half-promoted model must not take the server down
            logger.exception("keeping %s: its replacement could not be loaded", self.current.path)
            return False
        self.current = ServedModel(estimator, path, fingerprint)
        logger.info("now serving %s (%s)", path, fingerprint)
        return True

    async def watch(self) -> None:
        while True:
            await anyio.sleep(self.interval_s)
            await run_in_threadpool(self.refresh)
