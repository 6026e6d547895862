"""The menu's database work: bounded in time, and not even tried while the database is away.

A caller never waits in silence for a database that does not answer. Each read or action a
menu makes is bounded (its timeout), and after `threshold` failures in a row that say the
database is away (unreachable, refused, or too slow) the menu stops asking for `retry_after`
seconds (a circuit breaker, `circuitbreaker`): the fact is unknown at once and an action takes
its error path, just as if it had failed. Then one call tries again (the others still do not
ask), and its success closes the circuit.

Without it every caller's every lookup paid a connection attempt and a logged error; with the
database away, 50 callers got 96 sessions/s instead of ~1400 (and none at all while errors were
logged with rich tracebacks; BENCHMARKS.md, "The database away"). The call log is not guarded
here: its writes never wait (call_writer.py). One log line when the menu stops asking and one
when it asks again, not one per caller.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from circuitbreaker import CircuitBreaker

from call_router.db import unreachable

T = TypeVar("T")

# Failures in a row before the menu stops asking, and how long it then does not.
THRESHOLD = 3
RETRY_AFTER = 5.0
# The menus' database reads at once (the engine's pool has 10 connections, 20 more on demand).
THREADS = 8


class _NotAsked(Exception):
    """The circuit opened while this call waited for a thread: the database is not asked."""


def _database_away(_kind: type[BaseException], exc: BaseException) -> bool:
    """A failure that says the database is away (counts towards opening the circuit); a bug or
    bad data does not. (A call not asked counts too: the library takes anything it does not
    count as a success, which would close the circuit.)"""
    return isinstance(exc, TimeoutError | _NotAsked) or unreachable(exc)


class DatabaseGuard:
    """One per FastAGI process: every call's database work goes through `run`."""

    def __init__(self, *, threshold: int = THRESHOLD, retry_after: float = RETRY_AFTER) -> None:
        self._breaker = CircuitBreaker(
            failure_threshold=threshold,
            recovery_timeout=retry_after,
            expected_exception=_database_away,
            name="hotline-database",
        )
        self.skipped = 0  # calls not tried because the database was away
        # Threads of its own: reads hung on a silent database (up to libpq's connect_timeout)
        # never hold up the threads that read callers' speech and voicemail.
        self._threads = ThreadPoolExecutor(THREADS, thread_name_prefix="hotline-db")
        self._attempts: set[asyncio.Future[Any]] = set()  # held: the loop keeps weak refs
        self._said_away = False  # the log says the menu stopped asking
        self._probing = False  # the one call trying the database after the retry time

    @property
    def away(self) -> bool:
        """The database failed `threshold` times in a row lately: the menu does not ask it."""
        return bool(self._breaker.opened)

    async def run(
        self, log: Any, what: str, fn: Callable[..., T], *args: Any, timeout: float
    ) -> T | None:
        """`fn(*args)` in one of the guard's threads, at most `timeout` s; None when it fails,
        is too slow, or the database is away (then it is not tried)."""
        # Once the retry time is up, one call tries (it may wait its whole timeout on a
        # database that hangs); the others meanwhile do as if the circuit were still open.
        probe = not self._breaker.closed
        if self._breaker.opened or (probe and self._probing):
            self.skipped += 1
            return None
        if probe:
            self._probing = True
        # Its outcome counts even when the caller hangs up meanwhile: a cancelled attempt
        # would close the circuit (the library takes any exception it does not count as a
        # success), and callers who hang up on a silent database would keep it closed.
        attempt = asyncio.ensure_future(self._attempt(log, what, fn, args, timeout, probe))
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
        probe: bool,
    ) -> T | None:
        try:
            with self._breaker:
                work = asyncio.get_running_loop().run_in_executor(
                    self._threads, self._unless_away, fn, args
                )
                return await asyncio.wait_for(work, timeout)
        except _NotAsked:
            self.skipped += 1
            return None
        except TimeoutError:
            log.warning("database_read_timeout", what=what, timeout=timeout)
            return None
        except Exception as exc:
            if unreachable(exc):
                log.warning("database_read_failed", what=what, error=repr(exc)[:300])
            else:  # not the database being away: a bug or bad data, worth its traceback
                log.exception("database_read_failed", what=what)
            return None
        finally:
            if probe:
                self._probing = False
            self._log_change(log)

    def _unless_away(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        """In the thread: a burst of callers' reads queued for a thread before the circuit
        opened do not each try the database once it has."""
        if self._breaker.opened:
            raise _NotAsked
        return fn(*args)

    def _log_change(self, log: Any) -> None:
        if not self._said_away and self._breaker.opened:
            self._said_away = True
            log.error(
                "database_away_menu_stops_asking",
                failures=self._breaker.failure_count,
                retry_after=self._breaker.open_remaining,
                last_failure=repr(self._breaker.last_failure)[:300],
            )
        elif self._said_away and self._breaker.closed:
            self._said_away = False
            log.info("database_back_menu_asks_again", skipped=self.skipped)
            self.skipped = 0
