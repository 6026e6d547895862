"""The menu's database work: bounded in time, and reads not even tried while the database is away.

A caller never waits in silence for a database that does not answer. Each read or action a
menu makes is bounded (its timeout). After `threshold` reads in a row that say the database is
away (refused, unreachable, too slow) the menu stops reading for `retry_after` seconds: the
fact is unknown at once, just as if the read had failed. Then one read tries again (the others
still do not ask); when the database answers it, the menu reads again. While every thread is
held by reads that have not come back after failures (a hung database), new reads are not
queued behind them.

Only an answer from the database counts as its being back (a statement it executed,
call_router/db.statements_answered), not a read that answered from memory or swallowed its own
error. Actions (a meter reading, a callback, the call's link to a request) are never skipped:
each has its own way of doing without the database (the writer's spool, its error path) and
only they know it; they are bounded and run in the same threads.

Before, with the database away, every caller's every lookup paid a connection attempt and a
logged error: 50 callers got 96 sessions/s instead of ~1400, and none at all while errors were
logged with rich tracebacks (BENCHMARKS.md, "The database away"). One log line when the menu
stops reading and one when it reads again, not one per caller.

(A small state machine of our own, not the `circuitbreaker` package: that one takes anything
it is not told is a failure, a cancelled caller or an answer from memory included, as the
database being back.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from call_router.db import statements_answered, unreachable

if TYPE_CHECKING:
    from agi_scripts.call_context import CallContext

T = TypeVar("T")

# Reads in a row that fail before the menu stops reading, and how long it then does not.
THRESHOLD = 3
RETRY_AFTER = 5.0
# The menus' database work at once (the engine's pool has 10 connections, 20 more on demand).
THREADS = 8

_ANSWERED, _FAILED, _NEITHER = "answered", "failed", "neither"


class _NotAsked(Exception):
    """The menu stopped reading while this read waited for a thread: the database is not asked."""


class DatabaseGuard:
    """One per FastAGI process: every call's database work goes through `read` or `act`."""

    def __init__(
        self,
        *,
        threshold: int = THRESHOLD,
        retry_after: float = RETRY_AFTER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = threshold
        self.retry_after = retry_after
        self._clock = clock
        self._failures = 0  # reads in a row that said the database is away
        self._stopped_at: float | None = None  # None: the menu reads
        self._probing = False  # the one read trying the database after the retry time
        self._busy = 0  # work handed to the threads and not back from them
        self._busy_lock = threading.Lock()
        self.skipped = 0  # reads not tried since the menu stopped reading
        # Threads of its own: work hung on a silent database (up to libpq's connect_timeout)
        # never holds up the threads that read callers' speech and voicemail.
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="hotline-db")
        self._attempts: set[asyncio.Future[Any]] = set()  # held: the loop keeps weak refs

    @property
    def read_threads_free(self) -> bool:
        """No work is in the threads (every read and action has come back)."""
        return self._busy == 0

    @property
    def away(self) -> bool:
        """The menu does not read now (the database failed it lately; not yet time to retry)."""
        return self._stopped_at is not None and self._clock() - self._stopped_at < self.retry_after

    async def read(
        self, log: Any, what: str, fn: Callable[..., T], *args: Any, timeout: float
    ) -> T | None:
        """`fn(*args)` in one of the guard's threads, at most `timeout` s; None when it fails,
        is too slow, or the database is away (then it is not tried)."""
        probe = self._stopped_at is not None
        # Every thread held while reads have been failing: a hung database holds them; do
        # not queue behind it. (With a database that answers, a burst of reads just queues.)
        held = self._busy >= THREADS and self._failures > 0
        if self.away or (probe and self._probing) or held:
            self.skipped += 1
            return None
        self._probing = self._probing or probe
        return await self._shielded(self._attempt(log, what, fn, args, timeout, probe))

    async def act(
        self, log: Any, what: str, fn: Callable[..., T], *args: Any, timeout: float
    ) -> T | None:
        """An action: always tried (it knows its own way without the database), bounded;
        None when it fails or is too slow. Its outcome does not stop or resume reading."""
        return await self._shielded(self._attempt(log, what, fn, args, timeout, None))

    async def _shielded(self, work: Any) -> Any:
        # Its outcome counts even when the caller hangs up meanwhile: callers who hang up on
        # a silent database must not keep the menu asking it.
        attempt = asyncio.ensure_future(work)
        self._attempts.add(attempt)
        attempt.add_done_callback(self._attempts.discard)
        return await asyncio.shield(attempt)

    async def _attempt(
        self,
        log: Any,
        what: str,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        timeout: float,
        probe: bool | None,  # None: an action
    ) -> T | None:
        outcome = _NEITHER
        with self._busy_lock:
            self._busy += 1
        job = self._threads.submit(self._in_thread, fn, args, probe is not None)
        # When the thread is done with it (or it was cancelled before it started), not when
        # the caller stopped waiting: a read hung in a thread still holds that thread.
        job.add_done_callback(self._back)
        try:
            result, answered = await asyncio.wait_for(asyncio.wrap_future(job), timeout)
            outcome = _ANSWERED if answered else _NEITHER
            return result
        except _NotAsked:
            self.skipped += 1
            return None
        except TimeoutError:
            outcome = _FAILED
            log.warning("database_read_timeout", what=what, timeout=timeout)
            return None
        except Exception as exc:
            if unreachable(exc):
                outcome = _FAILED
                log.warning("database_read_failed", what=what, error=repr(exc)[:300])
            else:  # not the database being away: a bug or bad data, worth its traceback
                log.exception("database_read_failed", what=what)
            return None
        finally:
            if probe is not None:
                self._count(log, outcome, probe)

    def _back(self, _job: object) -> None:
        # In the thread that finished the job (or the loop's, that cancelled it): no wake-up
        # of the event loop for it.
        with self._busy_lock:
            self._busy -= 1

    def _in_thread(self, fn: Callable[..., T], args: tuple[Any, ...], read: bool) -> tuple[T, bool]:
        """`fn(*args)` and whether the database answered a statement meanwhile. A read queued
        for a thread before the menu stopped reading does not ask the database."""
        if read and self.away:
            raise _NotAsked
        before = statements_answered()
        result = fn(*args)
        return result, statements_answered() > before

    def _count(self, log: Any, outcome: str, probe: bool) -> None:
        if probe:
            self._probing = False
        if outcome == _ANSWERED:
            self._failures = 0
            if self._stopped_at is not None:
                self._stopped_at = None
                log.info("database_back_menu_reads_again", skipped=self.skipped)
                self.skipped = 0
        elif outcome == _FAILED:
            self._failures += 1
            if self._stopped_at is None and self._failures >= self.threshold:
                log.error(
                    "database_away_menu_stops_reading",
                    failures=self._failures,
                    retry_after=self.retry_after,
                )
            if probe or self._stopped_at is None and self._failures >= self.threshold:
                self._stopped_at = self._clock()


# For call contexts without flow services (tests, a server started without flows).
_UNSHARED = DatabaseGuard()


def for_call(ctx: CallContext) -> DatabaseGuard:
    """The guard a call's database work goes through: its process's one (FlowServices)."""
    return ctx.flows.database if ctx.flows is not None else _UNSHARED
