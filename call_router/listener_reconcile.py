"""The router's catch-up with Asterisk after a (re)connect or a database outage.

First the events Asterisk's records say were missed, then the open calls whose channel is gone
closed, and live state rebuilt.

The listener (call_router/ami_listener.py) asks Asterisk for its channels and queues a
`ReconcileRequest` behind the events that arrived before that snapshot; `Reconciler.apply` runs
it once every writer lane is idle. Asterisk's queue_log and CDRs are read by
call_router/reconcile.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import structlog
from sqlalchemy.orm import Session

from call_router import reconcile
from call_router.call_log import CallLog
from call_router.call_log_core import CallArrival
from call_router.call_log_sql import known_call_ids
from call_router.db import unreachable
from call_router.live_state import STAGE_QUEUE, LiveState
from call_router.router_agents import AgentPresence
from call_router.router_events import stage_of
from call_router.router_writer import EventWriter
from call_router.settings import QUEUES
from call_router.sql_in import slices

# CoreStatus's start time has whole seconds: a call this close to the start is not "before".
ASTERISK_START_SLACK = timedelta(seconds=2)
# A call that started this close to the channel snapshot may be missing from it legitimately.
RECONCILE_GRACE = timedelta(seconds=5)
# Calls that met the fail-safe are looked for from this long before the router last heard
# everything (events heard then may not have been written yet) ...
UNLOGGED_MARGIN = timedelta(minutes=2)
# ... but never further back than this: a call older than a day wants no callback now.
UNLOGGED_LOOKBACK = timedelta(days=1)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ReconcileRequest:
    """Queued behind the events that arrived before Asterisk's channel snapshot."""

    live_uniqueids: frozenset[str]
    requested_at: datetime
    done: asyncio.Future[int] = field(compare=False)
    # When this Asterisk started, and when the router last lost its AMI link (Asterisk gone).
    asterisk_started_at: datetime | None = None
    went_away_at: datetime | None = None
    # Until when the router (this one or the one before it) had every event: calls that
    # began later may have no row at all (listener_health.ListenerHealth.heard_until).
    heard_until: datetime | None = None


class Reconciler:
    """Applies a ReconcileRequest to the call log and live state; rebuilds live state."""

    def __init__(
        self,
        call_log: CallLog,
        live: LiveState,
        agents: AgentPresence,
        writer: EventWriter,
        records: reconcile.AsteriskRecords,
        clock: Callable[[], datetime],
    ) -> None:
        self._call_log = call_log
        self._live = live
        self._agents = agents
        self._writer = writer
        self._records = records
        self._clock = clock
        # Since when calls may have gone unlogged, while a search for them is still owed (one
        # that failed, e.g. the database away, is done by the next catch-up, whose own
        # request knows only that the link is up now).
        self._unlogged_since: datetime | None = None

    async def apply(self, item: ReconcileRequest) -> None:
        """Catch up with Asterisk: first what its records say the router missed (through the
        ordinary handlers), then close the calls whose channel is gone - at the end time
        Asterisk recorded when it has one, else now, as "reconciled"."""
        closed = 0
        try:
            await self._log_unlogged_calls(item)
            calls = await asyncio.to_thread(self._call_log.open_calls)
            rows, cdr_ends = await asyncio.to_thread(
                self._records.read, [call.linkedid for call in calls]
            )
            missed: list[dict[str, str]] = []
            for call in calls:
                if call.linkedid in rows:
                    known = await asyncio.to_thread(self._call_log.timeline, call.linkedid)
                    missed += reconcile.missed_events(rows[call.linkedid], known)
            if missed:
                log.info("ami_recovered_from_records", events=len(missed))
                await self._writer.apply(missed)
            for call in calls:
                if call.linkedid in item.live_uniqueids:
                    continue
                end = reconcile.ended_at(call.linkedid, rows.get(call.linkedid, []), cdr_ends)
                dropped = None if end is not None else dropped_at(call.started_at, item)
                # A call older than this Asterisk is gone for sure, however recent it is.
                if dropped is None and call.started_at > item.requested_at - RECONCILE_GRACE:
                    continue
                ended = await asyncio.to_thread(
                    self._call_log.call_ended,
                    call.linkedid,
                    cause="asterisk_restart" if dropped is not None else "reconciled",
                    at=end or dropped or self._clock(),
                    reconciled=True,
                    known_end=end is not None,
                    dropped=dropped is not None,
                )
                if ended is not None:
                    closed += 1
                    await self._live.call_ended(ended)
            await self.resync_live()
        except Exception as exc:
            if not unreachable(exc):
                raise
            # Nothing is lost: the catch-up runs again once the database is back.
            self._writer.database_lost(exc)
        finally:
            if not item.done.done():
                item.done.set_result(closed)

    @property
    def unlogged_since(self) -> datetime | None:
        """Since when calls may have gone unlogged, while a search for them is owed."""
        return self._unlogged_since

    def owe_unlogged_search(self, heard_until: datetime | None) -> None:
        """A catch-up that cannot run now (events wait for the database): the next one must
        search from `heard_until` on, whatever its own request knows."""
        heard = [t for t in (heard_until, self._unlogged_since) if t is not None]
        self._unlogged_since = min(heard) if heard else None

    async def _log_unlogged_calls(self, item: ReconcileRequest) -> None:
        """Rows for the calls nobody logged: with no FastAGI server to write a row and no
        router to hear the fail-safe's event, only Asterisk's records know of them. Once a
        row exists, the catch-up below replays their records and closes them like any other.

        The database away is raised (the catch-up runs again when it is back); any other
        failure is logged and does not stop the rest of the catch-up. Either way the search
        stays owed."""
        self.owe_unlogged_search(item.heard_until)
        if self._unlogged_since is None:
            return
        try:
            await self._search_unlogged_calls(item.requested_at)
        except Exception as exc:
            if unreachable(exc):
                raise
            log.exception("ami_unlogged_calls_search_failed")
            return
        self._unlogged_since = None

    async def _search_unlogged_calls(self, requested_at: datetime) -> None:
        assert self._unlogged_since is not None
        since = max(self._unlogged_since - UNLOGGED_MARGIN, requested_at - UNLOGGED_LOOKBACK)
        found = await asyncio.to_thread(self._records.failsafe_calls_since, since)
        if not found:
            return
        known = await asyncio.to_thread(
            self._call_log.run, lambda session: _known(session, [call.linkedid for call in found])
        )
        arrivals = [
            CallArrival(
                linkedid=call.linkedid,
                caller_number=call.caller_number,
                caller_name=call.caller_name,
                channel=call.channel,
                dialed_number=call.dialed_number,
                started_at=call.started_at,
            )
            for call in found
            if call.linkedid not in known
        ]
        if arrivals:
            await asyncio.to_thread(self._call_log.ensure_calls, arrivals)
            log.warning("ami_unlogged_calls_recovered", calls=len(arrivals), since=since)

    async def resync_live(self) -> None:
        """Live state rebuilt from the open calls (and every operator published again)."""
        calls = await asyncio.to_thread(self._call_log.open_calls)
        staged = [(call, stage_of(call)) for call in calls]
        waiting = {queue: 0 for queue in QUEUES}
        for call, stage in staged:
            if stage == STAGE_QUEUE and call.queue is not None:
                waiting[call.queue] = waiting.get(call.queue, 0) + 1
        await self._live.replace_all(staged, waiting)
        await self._agents.publish_all()


def _known(session: Session, linkedids: list[str]) -> dict[str, int]:
    """The ids of those calls that have a row (a day of a big outage: many IN lists)."""
    known: dict[str, int] = {}
    for part in slices(linkedids):
        known.update(known_call_ids(session, part))
    return known


def asterisk_started(date: str, time_of_day: str) -> datetime | None:
    """When Asterisk started, from CoreStatus's CoreStartupDate/Time (its local wall clock;
    the router is taken to share the machine's time zone, as the sandbox and compose do)."""
    try:
        local = datetime.strptime(f"{date.strip()} {time_of_day.strip()}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return local.astimezone(UTC)


def dropped_at(started_at: datetime, item: ReconcileRequest) -> datetime | None:
    """If the call began before this Asterisk started, Asterisk went away under it: when.

    The moment the router lost its AMI link, if that fell during the call; else (the router
    was down too) the latest time it can have been, the new Asterisk's start.
    """
    restart = item.asterisk_started_at
    if restart is None:
        return None
    went_away = item.went_away_at
    # Began before the link to the old Asterisk was lost: on the old one, however close to
    # the (whole-second) start of the new one.
    if went_away is not None and started_at <= went_away <= restart + ASTERISK_START_SLACK:
        return went_away
    if started_at < restart - ASTERISK_START_SLACK:
        return restart
    return None
