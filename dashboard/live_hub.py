"""What the live side of one dashboard process shares between requests: one Redis client (a
connection pool) and pictures computed once for everyone who asks at the same time.

A contact centre's wallboard is the same picture on many screens. `SharedPicture` computes it
once per process for all concurrent askers (single flight) and hands the result to later ones
until it is stale: when the next event arrives on `<prefix>:events` (the router publishes every
change there, each cluster node's router on its own; `LiveHub` keeps one subscription per
process to all of them), or after `max_age` seconds,
whichever comes first. While Redis is down no event can arrive, so only the age bounds it: a
picture is never older than `max_age`, and figures that grow with the clock (waits) are at most
that old.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

T = TypeVar("T")

# "The page reflects an Asterisk event within 1 s": with no event seen (Redis down, the
# subscription not yet up), a shared picture is reused for at most this long.
MAX_AGE_SECONDS = 1.0
RESUBSCRIBE_DELAYS = (0.5, 1.0, 2.0, 5.0)


def clock() -> float:
    """The cache's clock (monotonic); tests replace it."""
    return time.monotonic()


@dataclass(frozen=True)
class _Computed(Generic[T]):
    started: float
    value: T


class SharedPicture(Generic[T]):
    """One value for every concurrent asker, reused until invalidated or `max_age` old.

    A value counts as fresh for an asker when its computation *started* after everything the
    asker must see: the last `invalidate()`, `max_age` ago, and the asker's own `not_before`
    (a live stream passes the moment it saw an event). A computation already running that
    started late enough is joined instead of starting another; one that started earlier is
    not (it may have read the state before the change).
    """

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._latest: _Computed[T] | None = None
        self._running: tuple[float, asyncio.Future[T]] | None = None
        self._stale_before = float("-inf")
        self.computations = 0  # how many were started: for tests and the benchmark

    def invalidate(self) -> None:
        self._stale_before = clock()

    async def get(
        self, compute: Callable[[], Awaitable[T]], *, not_before: float | None = None
    ) -> T:
        now = clock()
        floor = max(self._stale_before, now - self.max_age)
        if not_before is not None:
            floor = max(floor, not_before)
        latest = self._latest
        if latest is not None and latest.started > floor:
            return latest.value
        if self._running is not None and self._running[0] > floor:
            # Shielded: an asker that goes away does not cancel the others' computation.
            return await asyncio.shield(self._running[1])
        started = clock()
        task = asyncio.ensure_future(compute())
        self.computations += 1
        self._running = (started, task)

        def done(finished: asyncio.Future[T]) -> None:
            if self._running is not None and self._running[1] is finished:
                self._running = None
            if finished.cancelled() or finished.exception() is not None:
                return  # nothing kept: the next asker tries again
            if self._latest is None or self._latest.started < started:
                self._latest = _Computed(started, finished.result())

        task.add_done_callback(done)
        return await asyncio.shield(task)


class LiveHub:
    """Per dashboard process: the Redis client every request shares, and one subscription to
    the event channels (`<prefix>:events`, and each cluster node's) that invalidates the
    shared pictures on every event.

    The subscription starts with the first shared picture asked for (it needs the running
    event loop) and is cancelled by `close()`, which the app calls on shutdown.
    """

    def __init__(self, redis: Redis, channels: list[str]) -> None:
        self.redis = redis
        self.channels = channels
        self._pictures: dict[str, SharedPicture[object]] = {}
        self._watcher: asyncio.Task[None] | None = None
        # Whether the subscription is up now (else only the age bounds a picture).
        self.subscribed = False

    def picture(self, name: str) -> SharedPicture[object]:
        """The shared picture called `name` (created on first use)."""
        self._watch()
        shared = self._pictures.get(name)
        if shared is None:
            shared = self._pictures[name] = SharedPicture(max_age=MAX_AGE_SECONDS)
        return shared

    def invalidate(self) -> None:
        for shared in self._pictures.values():
            shared.invalidate()

    def _watch(self) -> None:
        if self._watcher is None or self._watcher.done():
            self._watcher = asyncio.get_running_loop().create_task(self._follow_events())

    async def _follow_events(self) -> None:
        failures = 0
        while True:
            try:
                async with self.redis.pubsub() as pubsub:
                    await pubsub.subscribe(*self.channels)
                    # Events may have passed while not subscribed.
                    self.invalidate()
                    self.subscribed = True
                    failures = 0
                    while True:
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        if message is not None:
                            self.invalidate()
            except (RedisError, OSError) as exc:
                if failures == 0:
                    log.warning("live hub: Redis unavailable (%s); retrying", exc)
                if self.subscribed:
                    # Events may be missed from now on: what was read before is suspect.
                    self.invalidate()
                self.subscribed = False
                await asyncio.sleep(RESUBSCRIBE_DELAYS[min(failures, len(RESUBSCRIBE_DELAYS) - 1)])
                failures += 1

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self._watcher
            self._watcher = None
        self.subscribed = False
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()
