"""A database read kept in memory for the menu's hot path and read again once per `ttl`, by one
caller: the others meanwhile get what is in memory (open requests, callers' areas)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


# A claim to read again lapses after this long: its read may never have run (skipped while
# the database is away, agi_scripts/database_guard.py, or given up while it waited for a
# thread); the next caller then reads. Longer than any read's timeout.
CLAIM_LAPSES = 15.0


class ReadClaim:
    """Which caller reads a stale value again: one at a time, the others take what memory has."""

    def __init__(
        self, lapses: float = CLAIM_LAPSES, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lapses = lapses
        self._clock = clock
        self._since: float | None = None

    def take(self) -> bool:
        """True: this caller reads (no read is under way, or the last claim lapsed)."""
        now = self._clock()
        if self._since is not None and now - self._since < self._lapses:
            return False
        self._since = now
        return True

    def release(self) -> None:
        """The read is done (or failed): the next stale value is read again."""
        self._since = None


class Refreshed(Generic[T]):
    """`load()`'s last result and when it was read."""

    def __init__(self, load: Callable[[], T], ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._held: tuple[float, T] | None = None
        self._reading = ReadClaim()

    @property
    def current(self) -> T | None:
        """What is in memory, however old (None before the first read)."""
        return self._held[1] if self._held is not None else None

    def read(self) -> T:
        """What is in memory, read again first if it is stale (blocking: a worker thread's)."""
        try:
            held = self._held
            if held is None or time.monotonic() - held[0] >= self._ttl:
                value = self._load()
                self._held = (time.monotonic(), value)
                return value
            return held[1]
        finally:
            self._reading.release()

    def if_fresh(self) -> T | None:
        """What is in memory without reading, or None: nothing read yet, or stale and this
        caller is the one to read it again (with `read`, off the event loop)."""
        held = self._held
        if held is None:
            return None
        if time.monotonic() - held[0] >= self._ttl and self._reading.take():
            return None  # this caller reads; the others take what is in memory
        return held[1]
