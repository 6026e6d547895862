"""A database read kept in memory for the menu's hot path and read again once per `ttl`, by one
caller: the others meanwhile get what is in memory (open requests, callers' areas)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Refreshed(Generic[T]):
    """`load()`'s last result and when it was read."""

    def __init__(self, load: Callable[[], T], ttl: float) -> None:
        self._load = load
        self._ttl = ttl
        self._held: tuple[float, T] | None = None
        self._reading = False

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
            self._reading = False

    def if_fresh(self) -> T | None:
        """What is in memory without reading, or None: nothing read yet, or stale and this
        caller is the one to read it again (with `read`, off the event loop)."""
        held = self._held
        if held is None:
            return None
        if time.monotonic() - held[0] >= self._ttl and not self._reading:
            self._reading = True  # this caller reads; the others take what is in memory
            return None
        return held[1]
