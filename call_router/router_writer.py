"""Writing the router's events: writer lanes (one call, one lane, so a call's events keep their
arrival order), one transaction per batch, and the backlog that keeps every event while the
database is unreachable (call_router/event_backlog.py: memory, then a spool file), replayed
oldest first, forever, with a capped backoff."""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence

import structlog
from sqlalchemy import select

from call_router.call_log import CallLog
from call_router.db import DatabaseUnavailable, first_line, unreachable
from call_router.event_backlog import EventBacklog
from call_router.router_event_fields import Event

# Retries of the backlog while the database is unreachable: 0.5, 1, 2, 4, 5, 5 ... s, forever.
REPLAY_BACKOFF_FIRST = 0.5
REPLAY_BACKOFF_MAX = 5.0

log = structlog.get_logger(__name__)


class EventWriter:
    """Writes batches of events with `write_batch`; what the database cannot take waits in
    `backlog`, and new events queue behind it. `on_change` is told of every outage, return
    and backlog change (the health report)."""

    def __init__(
        self,
        call_log: CallLog,
        write_batch: Callable[[Sequence[Mapping[str, str]]], Awaitable[None]],
        backlog: EventBacklog,
        *,
        lanes: int,
        batch_size: int,
        on_change: Callable[[], None],
    ) -> None:
        self._call_log = call_log
        self._write_batch = write_batch
        self._batch_size = batch_size
        self._on_change = on_change
        # Events waiting for the database, oldest first (memory, then the spool file).
        self.backlog = backlog
        self.db_reachable = True
        # Events lost to an error in writing them since the router started (each logged as
        # ami_event_failed): the health report's and /metrics' error count.
        self.failed_events = 0
        # Set when the backlog has something to write (or the database is to be probed).
        self._wake = asyncio.Event()
        # Set while nothing waits and the database is reachable: events are written directly.
        self.idle = asyncio.Event()
        # Set when Asterisk's records must be read again (after an outage, a deferred reconcile).
        self.catch_up_due = asyncio.Event()
        (self._wake if self.backlog else self.idle).set()
        # The writer lanes and the batch each one is writing, for the shutdown's spool.
        self.lanes = [asyncio.Queue[dict[str, str]]() for _ in range(lanes)]
        self._in_flight: dict[int, list[dict[str, str]]] = {}

    def lane_of(self, event: Event) -> asyncio.Queue[dict[str, str]]:
        return self.lanes[lane_index(event, len(self.lanes))]

    async def drain(self) -> None:
        """Until every event handed to a lane so far is written or held."""
        for lane in self.lanes:
            await lane.join()

    async def run_lanes(self) -> None:
        workers = [
            asyncio.create_task(self.write_lane(i, lane), name=f"ami-writer-{i}")
            for i, lane in enumerate(self.lanes)
        ]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    async def write_lane(self, index: int, lane: asyncio.Queue[dict[str, str]]) -> None:
        """Drain the lane in batches: the events waiting are written in one transaction.

        While older events wait in the backlog, new ones queue up behind them (a call's events
        all pass through this one lane, so its order holds across lane, memory and spool)."""
        while True:
            events = [await lane.get()]
            while len(events) < self._batch_size:
                try:
                    events.append(lane.get_nowait())
                except asyncio.QueueEmpty:
                    break
            self._in_flight[index] = events
            try:
                if self.holding():
                    self.hold(events)
                else:
                    await self.apply(events)
            except DatabaseUnavailable as exc:
                log.warning("ami_events_held", events=len(events), error=str(exc))
                self.hold(events)
            except Exception:  # one bad event must not stop the router
                self.failed_events += len(events)
                log.exception("ami_event_failed", ami_event=describe(events[0]))
            finally:
                self._in_flight.pop(index, None)
                for _ in events:
                    lane.task_done()

    async def apply(self, events: Sequence[Mapping[str, str]]) -> None:
        """Write a batch in one transaction; if an event in it is bad, write the others one by
        one (writes are idempotent) and lose only that one. Raises DatabaseUnavailable when
        the database cannot be reached: then nothing is lost, the caller keeps the events."""
        try:
            await self._write_batch(events)
            return
        except Exception as exc:
            if unreachable(exc):
                raise DatabaseUnavailable(first_line(exc)) from exc
            if len(events) == 1:
                self.failed_events += 1
                log.exception("ami_event_failed", ami_event=describe(events[0]))
                return
        for event in events:
            await self.apply([event])

    def holding(self) -> bool:
        """New events must queue behind the backlog (or the database is known to be away)."""
        return bool(self.backlog) or not self.db_reachable

    def hold(self, events: Sequence[Mapping[str, str]]) -> None:
        self.backlog.append(dict(event) for event in events)
        self.idle.clear()
        self._wake.set()

    def database_lost(self, exc: BaseException) -> None:
        if self.db_reachable:
            log.warning("database_unreachable", error=first_line(exc))
        self.db_reachable = False
        self.idle.clear()
        self._wake.set()
        self.catch_up_due.set()

    async def replay_forever(self) -> None:
        """Write the backlog oldest first, retrying with a capped backoff until the database
        takes it; after an outage the catch-up with Asterisk's records follows."""
        delay = REPLAY_BACKOFF_FIRST
        while True:
            if not self.holding():
                self.idle.set()
                self._on_change()
                await self._wake.wait()
                self._wake.clear()
                continue
            try:
                batch = self.backlog.peek(self._batch_size)
                if batch:
                    await self.apply(batch)
                else:  # nothing waits, but the database was missed: is it back?
                    await asyncio.to_thread(self._call_log.run, lambda s: s.execute(select(1)))
                self.backlog.commit()
            except Exception as exc:
                if unreachable(exc):
                    self.database_lost(exc)
                else:  # not the events' fault either: keep them and try again
                    log.exception("backlog_replay_failed")
                # To disk at every retry: a crash of the router now loses at most the events
                # of the last few seconds (and Asterisk's records give those back).
                self.spill()
                self._on_change()
                await asyncio.sleep(delay)
                delay = min(delay * 2, REPLAY_BACKOFF_MAX)
                continue
            delay = REPLAY_BACKOFF_FIRST
            if not self.db_reachable:
                self.db_reachable = True
                log.info("database_reachable", waiting=len(self.backlog))
            self._on_change()

    def spill(self) -> None:
        try:
            self.backlog.spill()
        except OSError:  # a full or broken disk: the events stay in memory
            log.exception("backlog_spool_failed", events=len(self.backlog))

    def spool_pending(self, queued: Sequence[dict[str, str]]) -> None:
        """At shutdown: everything not known to be written goes to the spool, in order
        (batches being written, then each lane's, then `queued`: not dealt out yet)."""
        pending: list[dict[str, str]] = []
        for index, lane in enumerate(self.lanes):
            pending += self._in_flight.get(index, [])
            while not lane.empty():
                pending.append(lane.get_nowait())
        pending += queued
        self.backlog.append(pending)
        self.spill()
        self._on_change()


def lane_index(event: Event, lanes: int) -> int:
    """Every event of one call (linkedid) goes to the same writer; the rest to the first."""
    linkedid = event.get("Linkedid", "")
    return zlib.crc32(linkedid.encode()) % lanes if linkedid else 0


def describe(item: Mapping[str, str]) -> str:
    return f"{item.get('Event')} linkedid={item.get('Linkedid')}"
