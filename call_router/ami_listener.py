"""`hotline router`: completes every call's row from Asterisk Manager (AMI) events.

The FastAGI server writes what happens in the menu; this listener writes the rest (queue,
operators, hang-up, outcome, callback entry) and mirrors live state into Redis. It must work
alone too: if the FastAGI server is down the dialplan still queues the caller, and the row is
created here from Newchannel.

panoramisk runs event callbacks as untracked tasks, so the only callback puts the event on an
asyncio.Queue and one consumer takes them in arrival order. panoramisk's own ping never
checks the reply, so a watchdog pings and reconnects on silence; after every (re)connect the
open calls are reconciled against the channels Asterisk really has and against its queue_log
and CDRs (call_router/reconcile.py), so calls that ended meanwhile get their true outcome.

Writing: the consumer deals the events out to a few writer lanes by linkedid (one call, one
lane, so a call's events keep their arrival order); each lane drains what has queued up and
writes it in one transaction (handlers are idempotent, so a failed batch is replayed event by
event and only a bad event is lost), then updates live state. The AMI user only gets the events
handled here (manager.conf eventfilter, hotline/asterisk/render.py).

An unreachable database loses nothing: a batch that fails for want of a database, and every
event after it, waits in the backlog (call_router/event_backlog.py: memory, then a spool file)
in arrival order; one replayer retries it with a capped backoff, forever, and once it is written
the listener catches up with Asterisk's records exactly as after an AMI reconnect. At shutdown
whatever is not written yet goes to the spool, which is replayed first at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from panoramisk import Manager
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from call_router import callbacks, channel_vars, live_state, missed_rings, reconcile
from call_router import health as health_report
from call_router.agents import (
    AgentService,
    Membership,
    agent_state,
    interface_of,
    login_of,
    membership_from_event,
    queue_counts,
)
from call_router.ami_client import (
    AmiActionFailed,
    AmiUnavailable,
    ManagerSender,
    NoReconnectManager,
    wait_logged_in,
)
from call_router.autopause import AutoPausePolicy
from call_router.ban_policy import FAILURE_EVENTS
from call_router.call_log import (
    EVENT_AGI_FAILED,
    EVENT_QUEUE_STATUS,
    EVENT_VOICEMAIL,
    EVENT_VOICEMAIL_OFFERED,
    CallLog,
    CallView,
)
from call_router.db import Database, DatabaseUnavailable, first_line, unreachable
from call_router.event_backlog import EventBacklog
from call_router.live_state import STAGE_MENU, STAGE_QUEUE, STAGE_TALKING, LiveState
from call_router.models import utcnow
from call_router.operators import RosterError
from call_router.settings import QUEUES, Settings
from call_router.sip_bans import Apply, SipBanGuard, carrier_networks, rules_of
from call_router.tenant_routing import is_known_queue
from call_router.virtual_hold import CallbackRequest, request_callback_in

INBOUND_CONTEXT = "from-pstn"
# The dialplan context of click-to-call (asterisk_conf/extensions.conf.j2 [callback-out]).
CALLBACK_CONTEXT = "callback-out"
WATCHDOG_INTERVAL = 5.0
WATCHDOG_TIMEOUT = 5.0
LOGIN_TIMEOUT = 10.0
RECONCILE_TIMEOUT = 15.0
# Asterisk's AMI answers before every module is loaded; QueueAdd needs app_queue.
BOOT_TIMEOUT = 60.0
BOOT_POLL = 0.25
# CoreStatus's start time has whole seconds: a call this close to the start is not "before".
ASTERISK_START_SLACK = timedelta(seconds=2)
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0
# A call that started this close to the channel snapshot may be missing from it legitimately.
RECONCILE_GRACE = timedelta(seconds=5)
# Agent state: how often the roster / desired state is checked for changes to apply, and how
# often Asterisk's membership is compared in full anyway (someone used the Asterisk CLI).
AGENT_SYNC_INTERVAL = 2.0
AGENT_FULL_SYNC = 60.0
# The UserEvent the router sends itself through Asterisk to measure its lag; at most this many
# in flight (a stuck writer must not pile them up).
LAG_PROBE = "HotlineProbe"
MAX_PROBES = 3
# Retries of the backlog while the database is unreachable: 0.5, 1, 2, 4, 5, 5 ... s, forever.
REPLAY_BACKOFF_FIRST = 0.5
REPLAY_BACKOFF_MAX = 5.0

log = structlog.get_logger(__name__)

Event = Mapping[str, str]
# What a handler leaves for after the commit (live state, agent state); runs on the loop.
Effect = Callable[[], Awaitable[Any]]
Handler = Callable[[Event], Effect | None]


# Timeline kind of a call recording (MixMonitor); data {file (under recordings/), queue}.
EVENT_RECORDING = "recording"


class OurQueues:
    """`queue in OurQueues()`: a queue of ours, the centre's or a tenant's own (by its name's
    shape: tenants' queues come and go while the router runs)."""

    def __contains__(self, queue: object) -> bool:
        return isinstance(queue, str) and is_known_queue(queue, QUEUES)


class AmiError(Exception):
    """The AMI connection is unusable (login refused, no pong, connection lost)."""


@dataclass(frozen=True)
class _Reconcile:
    """Queued behind the events that arrived before Asterisk's channel snapshot."""

    live_uniqueids: frozenset[str]
    requested_at: datetime
    done: asyncio.Future[int] = field(compare=False)
    # When this Asterisk started, and when the router last lost its AMI link (Asterisk gone).
    asterisk_started_at: datetime | None = None
    went_away_at: datetime | None = None


class AmiListener:
    def __init__(
        self,
        settings: Settings,
        call_log: CallLog,
        live: LiveState,
        *,
        clock: Callable[[], datetime] = utcnow,
        db: Database | None = None,
        records: reconcile.AsteriskRecords | None = None,
        sip_bans: SipBanGuard | None = None,
        backlog: EventBacklog | None = None,
    ) -> None:
        self._settings = settings
        self._call_log = call_log
        self._live = live
        self._clock = clock
        self._queue: asyncio.Queue[dict[str, str] | _Reconcile] = asyncio.Queue()
        # Events written per transaction (1: one transaction per event, the old way).
        self._batch_size = max(1, settings.ami_batch_size)
        # Parallel writers (by linkedid); SQLite takes one writer at a time anyway.
        self._writers = 1 if settings.db_url.startswith("sqlite") else settings.ami_writers
        # Asterisk's queue_log and CDRs: what happened while the router was away.
        self._records = records or reconcile.AsteriskRecords.in_log_dir(
            settings.asterisk_dir / "log"
        )
        # The centre's queues and the tenants' own (t<id>_<service>, tenant_routing.py).
        self._queues = OurQueues()
        # Agent state (call_router/agents.py): without a database the listener only logs calls.
        self._db = db
        self._agents = AgentService(db, clock=clock) if db is not None else None
        self._autopause = AutoPausePolicy(settings.autopause_after_missed_rings)
        self._sender: ManagerSender | None = None
        # (queue, interface) → membership, from QueueStatus and QueueMember* events.
        self._members: dict[tuple[str, str], Membership] = {}
        # login → (state, since) for the wallboard's "since".
        self._operator_since: dict[str, tuple[str, datetime]] = {}
        # When the AMI link was last lost: the moment Asterisk went away if it was restarted.
        self._link_lost_at: datetime | None = None
        # Health (call_router/health.py): this Asterisk's start, and lag probes in flight
        # (a UserEvent sent through Asterisk and timed until its handler ran).
        self._asterisk_started: datetime | None = None
        self._probes: dict[str, float] = {}
        # The live AMI link while connected and reconciled (None otherwise).
        self._link: ManagerSender | None = None
        # Set when the link comes or goes: the health report is rewritten at once.
        self._link_changed = asyncio.Event()
        self._last_lag: float | None = None
        # Events waiting for the database, oldest first (memory, then the spool file).
        self._backlog = backlog or EventBacklog(
            settings.router_spool_path, settings.router_backlog_memory
        )
        self._db_reachable = True
        # Set when the backlog has something to write (or the database is to be probed).
        self._backlog_waiting = asyncio.Event()
        # Set while nothing waits and the database is reachable: events are written directly.
        self._idle = asyncio.Event()
        # Set when Asterisk's records must be read again (after an outage, a deferred reconcile).
        self._catch_up_due = asyncio.Event()
        (self._backlog_waiting if self._backlog else self._idle).set()
        # The writer lanes and the batch each one is writing, for the shutdown's spool.
        self._lanes: list[asyncio.Queue[dict[str, str]]] = []
        self._in_flight: dict[int, list[dict[str, str]]] = {}
        # The subscribe table: Asterisk event name → handler. Everything else is ignored.
        # Each runs inside the batch's transaction and returns what to do after the commit.
        self._handlers: dict[str, Handler] = {
            "Newchannel": self._on_newchannel,
            "QueueCallerJoin": self._on_queue_caller_join,
            "QueueCallerLeave": self._on_queue_caller_leave,
            "QueueCallerAbandon": self._on_queue_caller_abandon,
            "AgentCalled": self._on_agent_called,
            "AgentRingNoAnswer": self._on_agent_ring_no_answer,
            "AgentConnect": self._on_agent_connect,
            "AgentComplete": self._on_agent_complete,
            "Hangup": self._on_hangup,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "VarSet": self._on_varset,
            "Newexten": self._on_newexten,
            # Membership lives in memory only: the handler hands the event to the loop.
            "QueueMemberAdded": lambda e: lambda: self._on_member_changed(e),
            "QueueMemberStatus": lambda e: lambda: self._on_member_changed(e),
            "QueueMemberPause": lambda e: lambda: self._on_member_changed(e),
            "QueueMemberPenalty": lambda e: lambda: self._on_member_changed(e),
            "QueueMemberRemoved": lambda e: lambda: self._on_member_removed(e),
            "UserEvent": self._on_user_event,
            "DialBegin": self._on_callback_dial,
            "DialEnd": self._on_callback_dial,
        }
        if sip_bans is not None:
            # Failed SIP authentications: counted (and maybe banned) after the batch commits.
            for name in FAILURE_EVENTS:
                self._handlers[name] = _after_commit(sip_bans.on_event)

    # --- connection lifecycle -------------------------------------------------------

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Forever: connect, reconcile, consume; reconnect with backoff (1, 2, 4 … 30 s)."""
        consumer = asyncio.create_task(self._consume(), name="ami-consumer")
        health_reports = asyncio.create_task(self._health_loop(), name="router-health")
        replayer = asyncio.create_task(self._replay_backlog(), name="ami-backlog")
        backoff = BACKOFF_FIRST
        try:
            while True:
                manager = self._new_manager()
                try:
                    await self._connect(manager)
                    backoff = BACKOFF_FIRST
                    started_at = await self._asterisk_started_at(manager)
                    self._asterisk_started, self._probes = started_at, {}
                    closed = await self._reconcile(manager, started_at)
                    log.info("ami_ready", reconciled=closed)
                    # Queue membership before "ready": a call right after start finds operators.
                    await self._sync_agents(ManagerSender(manager))
                    if ready is not None:
                        ready.set()
                    helpers = [
                        asyncio.create_task(
                            self._agent_loop(ManagerSender(manager)), name="ami-agents"
                        ),
                        asyncio.create_task(self._catch_up_when_due(manager), name="ami-catch-up"),
                        asyncio.create_task(self._live_heartbeat(), name="live-heartbeat"),
                    ]
                    self._link = ManagerSender(manager)
                    self._link_changed.set()
                    try:
                        await self._watch(manager)
                    finally:
                        for helper in helpers:
                            helper.cancel()
                        self._sender = self._link = None
                        self._link_changed.set()
                except (OSError, TimeoutError, AmiError, AmiUnavailable) as exc:
                    self._link_lost_at = self._clock()
                    log.warning("ami_disconnected", error=str(exc) or type(exc).__name__)
                finally:
                    manager.close()
                log.info("ami_reconnect_in", seconds=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, BACKOFF_MAX)
        finally:
            consumer.cancel()
            health_reports.cancel()
            replayer.cancel()
            self._spool_pending()

    def _new_manager(self) -> NoReconnectManager:
        manager = NoReconnectManager.to(
            self._settings,
            # Our watchdog does the real liveness check; keep panoramisk's blind ping rare.
            ping_delay=60,
            ping_interval=60,
        )
        manager.register_event("*", self._enqueue)
        return manager

    def _enqueue(self, _manager: Manager, event: Mapping[str, Any]) -> None:
        # Runs inside panoramisk's dispatch: do nothing but hand the event over.
        self._queue.put_nowait(_plain(event))

    async def _connect(self, manager: NoReconnectManager) -> None:
        await asyncio.wait_for(manager.connect(), LOGIN_TIMEOUT)
        await wait_logged_in(manager, LOGIN_TIMEOUT)
        log.info("ami_connected", host=self._settings.ami_host, port=self._settings.ami_port)

    async def _watch(self, manager: NoReconnectManager) -> None:
        while True:
            try:
                await asyncio.wait_for(manager.lost.wait(), WATCHDOG_INTERVAL)
                raise AmiError("AMI connection lost")
            except TimeoutError:
                pass
            try:
                reply = await asyncio.wait_for(
                    manager.send_action({"Action": "Ping"}), WATCHDOG_TIMEOUT
                )
            except TimeoutError as exc:
                raise AmiError("no reply to AMI Ping") from exc
            if _field(reply, "Response").lower() != "success":
                raise AmiError(f"bad reply to AMI Ping: {_plain(reply)}")
            # A heartbeat for readers of the health file: its updated_at stays fresh.
            self._write_health()

    async def _asterisk_started_at(self, manager: NoReconnectManager) -> datetime | None:
        """Wait until Asterisk is fully booted (app_queue loaded, so QueueAdd works), then
        when it started: its start time tells a restarted Asterisk from a reconnect to the same
        one. None if it cannot say (the reconcile then treats vanished calls as before).
        Only actions the router's AMI user may send (no `command` class: SECURITY.md, item 6)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + BOOT_TIMEOUT
        while not await self._queues_loaded(manager):
            if loop.time() >= deadline:
                raise AmiError("Asterisk did not finish booting")
            await asyncio.sleep(BOOT_POLL)
        try:
            reply = await asyncio.wait_for(
                manager.send_action({"Action": "CoreStatus"}), WATCHDOG_TIMEOUT
            )
        except TimeoutError as exc:
            raise AmiError("no reply to AMI CoreStatus") from exc
        started = asterisk_started(
            _field(reply, "CoreStartupDate"), _field(reply, "CoreStartupTime")
        )
        if started is None:
            log.warning("asterisk_start_unknown", reply=_plain(reply))
        return started

    async def _queues_loaded(self, manager: NoReconnectManager) -> bool:
        """app_queue answers QueueSummary once it is loaded (an unknown action before)."""
        try:
            reply = await asyncio.wait_for(
                manager.send_action({"Action": "QueueSummary", "Queue": QUEUES[0]}),
                WATCHDOG_TIMEOUT,
            )
        except TimeoutError as exc:
            raise AmiError("no reply to AMI QueueSummary") from exc
        first = reply[0] if isinstance(reply, list) and reply else reply
        return _field(first, "Response").lower() == "success"

    async def _reconcile(
        self, manager: NoReconnectManager, asterisk_started_at: datetime | None = None
    ) -> int:
        """Close calls whose inbound channel is gone; returns how many were closed."""
        requested_at = self._clock()
        reply = await asyncio.wait_for(
            manager.send_action({"Action": "CoreShowChannels"}), RECONCILE_TIMEOUT
        )
        messages = reply if isinstance(reply, list) else [reply]
        if _field(messages[0], "Response").lower() not in ("success", ""):
            raise AmiError(f"CoreShowChannels failed: {_plain(messages[0])}")
        uniqueids = frozenset(
            _field(m, "Uniqueid") for m in messages if _field(m, "Event") == "CoreShowChannel"
        )
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(
            _Reconcile(uniqueids, requested_at, done, asterisk_started_at, self._link_lost_at)
        )
        return await done

    # --- the consumer ------------------------------------------------------------------

    async def _consume(self) -> None:
        """Hand each event to its writer lane; a reconcile waits until every lane is idle.

        A call's events (one linkedid) always go to the same lane, so they are written in
        arrival order; lanes write different calls at the same time, so one call's database
        round trips (or live-state updates) do not hold up the others.
        """
        lanes = self._lanes = [asyncio.Queue[dict[str, str]]() for _ in range(self._writers)]
        workers = [
            asyncio.create_task(self._write_lane(i, lane), name=f"ami-writer-{i}")
            for i, lane in enumerate(lanes)
        ]
        try:
            while True:
                item = await self._queue.get()
                try:
                    if isinstance(item, _Reconcile):
                        # It must see everything that arrived before Asterisk's snapshot.
                        for lane in lanes:
                            await lane.join()
                        if self._holding():
                            # Events are waiting for the database: catch up once written.
                            item.done.set_result(0)
                            self._catch_up_due.set()
                        else:
                            await self._apply_reconcile(item)
                    else:
                        lanes[_lane_of(item, len(lanes))].put_nowait(item)
                    if self._live.resync_needed and not self._holding():
                        await self._resync_live()
                except Exception:
                    log.exception("ami_event_failed", ami_event=_describe(item))
                finally:
                    self._queue.task_done()
        finally:
            for worker in workers:
                worker.cancel()

    async def _write_lane(self, index: int, lane: asyncio.Queue[dict[str, str]]) -> None:
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
                if self._holding():
                    self._hold(events)
                else:
                    await self._apply(events)
            except DatabaseUnavailable as exc:
                log.warning("ami_events_held", events=len(events), error=str(exc))
                self._hold(events)
            except Exception:  # one bad event must not stop the router
                log.exception("ami_event_failed", ami_event=_describe(events[0]))
            finally:
                self._in_flight.pop(index, None)
                for _ in events:
                    lane.task_done()

    async def _apply(self, events: Sequence[Mapping[str, str]]) -> None:
        """Write a batch in one transaction; if an event in it is bad, write the others one by
        one (writes are idempotent) and lose only that one. Raises DatabaseUnavailable when
        the database cannot be reached: then nothing is lost, the caller keeps the events."""
        try:
            await self.handle_batch(events)
            return
        except Exception as exc:
            if unreachable(exc):
                raise DatabaseUnavailable(first_line(exc)) from exc
            if len(events) == 1:
                log.exception("ami_event_failed", ami_event=_describe(events[0]))
                return
        for event in events:
            await self._apply([event])

    # --- the backlog: events waiting for the database ------------------------------------

    def _holding(self) -> bool:
        """New events must queue behind the backlog (or the database is known to be away)."""
        return bool(self._backlog) or not self._db_reachable

    def _hold(self, events: Sequence[Mapping[str, str]]) -> None:
        self._backlog.append(dict(event) for event in events)
        self._idle.clear()
        self._backlog_waiting.set()

    def _database_lost(self, exc: BaseException) -> None:
        if self._db_reachable:
            log.warning("database_unreachable", error=first_line(exc))
        self._db_reachable = False
        self._idle.clear()
        self._backlog_waiting.set()
        self._catch_up_due.set()

    async def _replay_backlog(self) -> None:
        """Write the backlog oldest first, retrying with a capped backoff until the database
        takes it; after an outage the catch-up with Asterisk's records follows."""
        delay = REPLAY_BACKOFF_FIRST
        while True:
            if not self._holding():
                self._idle.set()
                self._write_health()
                await self._backlog_waiting.wait()
                self._backlog_waiting.clear()
                continue
            batch = self._backlog.peek(self._batch_size)
            try:
                if batch:
                    await self._apply(batch)
                else:  # nothing waits, but the database was missed: is it back?
                    await asyncio.to_thread(self._call_log.run, lambda s: s.execute(select(1)))
            except Exception as exc:
                if unreachable(exc):
                    self._database_lost(exc)
                else:  # not the events' fault either: keep them and try again
                    log.exception("backlog_replay_failed")
                # To disk at every retry: a crash of the router now loses at most the events
                # of the last few seconds (and Asterisk's records give those back).
                self._spill()
                self._write_health()
                await asyncio.sleep(delay)
                delay = min(delay * 2, REPLAY_BACKOFF_MAX)
                continue
            self._backlog.commit()
            delay = REPLAY_BACKOFF_FIRST
            if not self._db_reachable:
                self._db_reachable = True
                log.info("database_reachable", waiting=len(self._backlog))
            self._write_health()

    async def _catch_up_when_due(self, manager: NoReconnectManager) -> None:
        """After an outage, once the backlog is written: the same catch-up as on reconnect."""
        while True:
            await self._catch_up_due.wait()
            await self._idle.wait()
            self._catch_up_due.clear()
            try:
                closed = await self._reconcile(manager)
            except (OSError, TimeoutError, AmiError) as exc:  # reconnecting reconciles anyway
                log.warning("catch_up_failed", error=str(exc) or type(exc).__name__)
                return
            log.info("caught_up_after_outage", reconciled=closed)

    def _spool_pending(self) -> None:
        """At shutdown: everything not known to be written goes to the spool, in order."""
        pending: list[dict[str, str]] = []
        for index, lane in enumerate(self._lanes):
            pending += self._in_flight.get(index, [])
            while not lane.empty():
                pending.append(lane.get_nowait())
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, _Reconcile):
                pending.append(item)
        self._backlog.append(pending)
        self._spill()
        self._write_health()

    def _spill(self) -> None:
        try:
            self._backlog.spill()
        except OSError:  # a full or broken disk: the events stay in memory
            log.exception("backlog_spool_failed", events=len(self._backlog))

    def _write_health(self) -> None:
        """At once, on a change the report shows (outage, backlog, a probe's return)."""
        try:
            health_report.write_router_health(
                health_report.router_health_path(self._settings), self.health()
            )
        except OSError as exc:  # health is a report: never stop the router for it
            log.warning("router_health_write_failed", error=str(exc))

    async def _apply_reconcile(self, item: _Reconcile) -> None:
        """Catch up with Asterisk: first what its records say the router missed (through the
        ordinary handlers), then close the calls whose channel is gone - at the end time
        Asterisk recorded when it has one, else now, as "reconciled"."""
        closed = 0
        try:
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
                await self._apply(missed)
            for call in calls:
                if call.linkedid in item.live_uniqueids:
                    continue
                end = reconcile.ended_at(call.linkedid, rows.get(call.linkedid, []), cdr_ends)
                dropped_at = None if end is not None else _dropped_at(call.started_at, item)
                # A call older than this Asterisk is gone for sure, however recent it is.
                if dropped_at is None and call.started_at > item.requested_at - RECONCILE_GRACE:
                    continue
                ended = await asyncio.to_thread(
                    self._call_log.call_ended,
                    call.linkedid,
                    cause="asterisk_restart" if dropped_at is not None else "reconciled",
                    at=end or dropped_at or self._clock(),
                    reconciled=True,
                    known_end=end is not None,
                    dropped=dropped_at is not None,
                )
                if ended is not None:
                    closed += 1
                    await self._live.call_ended(ended)
            await self._resync_live()
        except Exception as exc:
            if not unreachable(exc):
                raise
            # Nothing is lost: the catch-up runs again once the database is back.
            self._database_lost(exc)
        finally:
            if not item.done.done():
                item.done.set_result(closed)

    async def _resync_live(self) -> None:
        calls = await asyncio.to_thread(self._call_log.open_calls)
        staged = [(call, _stage(call)) for call in calls]
        waiting = {queue: 0 for queue in QUEUES}
        for call, stage in staged:
            if stage == STAGE_QUEUE and call.queue is not None:
                waiting[call.queue] = waiting.get(call.queue, 0) + 1
        await self._live.replace_all(staged, waiting)
        await self._publish_agents()

    # --- events -------------------------------------------------------------------------

    async def handle(self, event: Mapping[str, str]) -> None:
        """One AMI event (a plain dict) → call log and live state. Unknown events are ignored."""
        await self.handle_batch([event])

    async def handle_batch(self, events: Sequence[Mapping[str, str]]) -> None:
        """Events in arrival order → one database transaction, then live state in order.

        Handlers run in a worker thread and only write the call log; what they return runs
        afterwards on the event loop (Redis, in-memory agent state, AMI actions), so nothing
        is published for a write that was rolled back.
        """
        wanted = [event for event in events if event.get("Event", "") in self._handlers]
        if not wanted:
            return
        effects = await asyncio.to_thread(self._write, wanted)
        for effect in effects:
            try:
                await effect()
            except Exception:  # live state is a convenience: never undo the log for it
                log.exception("ami_effect_failed")

    def _write(self, events: Sequence[Mapping[str, str]]) -> list[Effect]:
        effects: list[Effect] = []
        with self._call_log.batch():
            for event in events:
                effect = self._handlers[event["Event"]](event)
                self._call_log.checkpoint()
                if effect is not None:
                    effects.append(effect)
        return effects

    def _on_newchannel(self, event: Event) -> Effect | None:
        if not _is_inbound_first_channel(event):
            return None
        linkedid = event["Linkedid"]
        self._call_log.ensure_call(
            linkedid,
            caller_number=event.get("CallerIDNum"),
            caller_name=event.get("CallerIDName"),
            channel=event.get("Channel"),
            dialed_number=event.get("Exten"),
            started_at=self._at(event),
        )
        call = self._call_log.get_call(linkedid)
        if call is None or call.ended_at is not None:
            return None
        return lambda: self._live.call_stage(call, STAGE_MENU)

    def _on_queue_caller_join(self, event: Event) -> Effect | None:
        linkedid, queue = event.get("Linkedid", ""), event.get("Queue", "")
        if not linkedid or queue not in self._queues:
            return None
        at = self._at(event)
        if event.get("Uniqueid") == linkedid and self._call_log.find_call_id(linkedid) is None:
            # Newchannel was missed (router restarted mid-call): the caller's own channel
            # joining a hotline queue is enough to know it is ours.
            self._call_log.ensure_call(
                linkedid,
                caller_number=event.get("CallerIDNum"),
                caller_name=event.get("CallerIDName"),
                channel=event.get("Channel"),
                started_at=at,
            )
        position = _int(event.get("Position"))
        call = self._call_log.queue_joined(
            linkedid,
            queue=queue,
            key=f"queue_join:{queue}:{_moment(event)}",
            at=at,
            data={"position": position},
        )
        if call is None:
            return None

        async def publish() -> None:
            await self._live.call_stage(call, STAGE_QUEUE, position=position)
            await self._publish_waiting(event)

        return publish

    def _on_queue_caller_leave(self, event: Event) -> Effect | None:
        linkedid, queue = event.get("Linkedid", ""), event.get("Queue", "")
        if queue not in self._queues:
            return None
        call = self._call_log.queue_left(
            linkedid,
            queue=queue,
            key=f"queue_leave:{queue}:{_moment(event)}",
            at=self._at(event),
        )
        return (lambda: self._publish_waiting(event)) if call is not None else None

    def _on_queue_caller_abandon(self, event: Event) -> Effect | None:
        linkedid, queue = event.get("Linkedid", ""), event.get("Queue", "")
        if queue not in self._queues:
            return None
        hold_time = _int(event.get("HoldTime"))
        call = self._call_log.queue_abandoned(
            linkedid,
            queue=queue,
            key=f"abandon:{queue}:{_moment(event)}",
            at=self._at(event),
            hold_time=hold_time,
        )
        if call is None:
            return None
        data = {"linkedid": linkedid, "queue": queue, "hold_time": hold_time}
        return lambda: self._live.publish("abandon", data)

    def _on_agent_called(self, event: Event) -> Effect | None:
        linkedid, queue, member = _agent_fields(event)
        is_new = self._call_log.agent_ringing(
            linkedid,
            queue=queue,
            member=member,
            key=_leg_key("ring", event),
            at=self._at(event),
        )
        if not is_new:
            return None
        data = {"linkedid": linkedid, "queue": queue, "operator": member}
        return lambda: self._live.publish("ring", data)

    def _on_agent_ring_no_answer(self, event: Event) -> Effect | None:
        linkedid, queue, member = _agent_fields(event)
        is_new = self._call_log.agent_no_answer(
            linkedid,
            queue=queue,
            member=member,
            key=_leg_key("ring_no_answer", event),
            at=self._at(event),
            ring_time=_int(event.get("RingTime")),
        )
        interface = event.get("Interface", "")
        # A replayed event must not count a second miss: the count is written with the event.
        if not is_new or not interface or not self._autopause.enabled:
            return None
        at = self._at(event)
        missed: int = self._call_log.run(
            lambda session: missed_rings.count_miss(session, interface, at)
        )
        return lambda: self._count_missed_ring(event, missed)

    def _on_agent_connect(self, event: Event) -> Effect | None:
        linkedid, queue, member = _agent_fields(event)
        call = self._call_log.agent_connected(
            linkedid,
            queue=queue,
            operator=member,
            key=_leg_key("connect", event),
            at=self._at(event),
            hold_time=_int(event.get("HoldTime")),
            interface=event.get("Interface") or None,
        )
        interface = event.get("Interface", "")
        if interface and self._autopause.enabled:  # an answered call ends the missed-ring run
            self._call_log.run(lambda session: missed_rings.reset(session, interface))
        return (lambda: self._live.call_stage(call, STAGE_TALKING)) if call is not None else None

    def _on_agent_complete(self, event: Event) -> Effect | None:
        linkedid, queue, member = _agent_fields(event)
        self._call_log.agent_completed(
            linkedid,
            queue=queue,
            operator=member,
            key=_leg_key("complete", event),
            at=self._at(event),
            reason=event.get("Reason") or None,
            talk_time=_int(event.get("TalkTime")),
        )
        return None

    def _on_hangup(self, event: Event) -> Effect | None:
        linkedid = event.get("Linkedid", "")
        # Only the inbound channel's hang-up ends the call; operator legs end via AgentComplete.
        if not linkedid or event.get("Uniqueid") != linkedid:
            return None
        cause = event.get("Cause-txt") or event.get("Cause") or None
        call = self._call_log.call_ended(linkedid, cause=cause, at=self._at(event))
        return (lambda: self._live.call_ended(call)) if call is not None else None

    def _on_blind_transfer(self, event: Event) -> Effect | None:
        data = {
            "result": event.get("Result"),
            "extension": event.get("Extension"),
            "context": event.get("Context"),
            "transferer": event.get("TransfererChannel"),
        }
        return self._transfer(
            "blind_transfer", event, ("TransfereeLinkedid", "TransfererLinkedid"), data
        )

    def _on_attended_transfer(self, event: Event) -> Effect | None:
        data = {
            "result": event.get("Result"),
            "dest_type": event.get("DestType"),
            "transferer": event.get("OrigTransfererChannel"),
            "target": event.get("TransferTargetChannel") or event.get("SecondTransfererChannel"),
        }
        return self._transfer(
            "attended_transfer",
            event,
            ("TransfereeLinkedid", "OrigTransfererLinkedid", "SecondTransfererLinkedid"),
            data,
        )

    def _transfer(
        self, kind: str, event: Event, linkedid_fields: tuple[str, ...], data: dict[str, Any]
    ) -> Effect | None:
        key = f"{kind}:{_moment(event)}"
        for name in linkedid_fields:
            linkedid = event.get(name)
            if not linkedid:
                continue
            if self._call_log.record_event(linkedid, kind, key=key, at=self._at(event), data=data):
                published = {"linkedid": linkedid, **data}
                return lambda: self._live.publish(kind, published)
        return None

    def _on_varset(self, event: Event) -> Effect | None:
        linkedid = event.get("Linkedid", "")
        # Only the caller's own channel carries the variables below.
        if not linkedid or event.get("Uniqueid") != linkedid:
            return None
        variable, value = event.get("Variable", ""), event.get("Value", "")
        at = self._at(event)
        if variable == "QUEUESTATUS":
            # Why Queue() returned without an operator (TIMEOUT, FULL, JOINEMPTY, ...).
            self._call_log.record_event(
                linkedid,
                EVENT_QUEUE_STATUS,
                key=f"queue_status:{value}:{_moment(event)}",
                at=at,
                data={"status": value},
            )
        elif variable == "VMSTATUS" and value == "SUCCESS":
            # Only a message actually left makes the outcome "voicemail".
            self._call_log.record_event(linkedid, EVENT_VOICEMAIL, key=EVENT_VOICEMAIL, at=at)
        elif variable == channel_vars.QUEUE and value in self._queues:
            # The dialplan's queue choice: known even when Queue() never lets the caller join.
            self._call_log.queue_planned(linkedid, queue=value)
        return None

    def _on_newexten(self, event: Event) -> Effect | None:
        if event.get("Application", "").lower() != "voicemail":
            return None
        self._call_log.record_event(
            event.get("Linkedid", ""),
            EVENT_VOICEMAIL_OFFERED,
            key=f"{EVENT_VOICEMAIL_OFFERED}:{_moment(event)}",
            at=self._at(event),
            data={"mailbox": event.get("AppData", "")[:64]},
        )
        return None

    def _on_callback_dial(self, event: Event) -> Effect | None:
        """The resident's leg of a click-to-call (call_router/click_to_call.py): its ringing,
        answer or failure goes on that call's timeline. Other Dial()s are not ours to log."""
        if event.get("Context") != CALLBACK_CONTEXT:
            return None
        linkedid = event.get("Linkedid", "")
        begin = event.get("Event") == "DialBegin"
        kind = callbacks.EVENT_DIAL_BEGIN if begin else callbacks.EVENT_DIAL_END
        data = {
            "operator_channel": event.get("Channel"),
            "resident_channel": event.get("DestChannel"),
            "resident_uniqueid": event.get("DestUniqueid"),
            "status": None if begin else event.get("DialStatus"),
        }
        recorded = self._call_log.record_event(
            linkedid,
            kind,
            key=f"{kind}:{event.get('DestUniqueid', '')}",
            at=self._at(event),
            data=data,
        )
        if not recorded:
            return None
        published = {"linkedid": linkedid, **data}
        return lambda: self._live.publish(kind, published)

    # --- agents: membership, auto-pause, live operator state -------------------------

    async def _sync_agents(self, sender: ManagerSender) -> None:
        """Apply the desired agent state and refresh the membership snapshot; never fatal."""
        if self._agents is None:
            return
        self._sender = sender
        try:
            await self._agents.sync(sender)
            members = await self._agents.members(sender)
        except (AmiActionFailed, AmiUnavailable, OperationalError) as exc:
            log.warning("agents_sync_failed", error=str(exc))
            return
        self._members = {(m.queue, m.interface): m for m in members}
        await self._publish_agents()

    async def _agent_loop(self, sender: ManagerSender) -> None:
        """Apply roster / agent-state changes made elsewhere (CLI, API, `operators add`)."""
        if self._agents is None:
            return
        loop = asyncio.get_running_loop()
        # None: not known (the database was away when the link came up, so the sync before
        # "ready" failed too): the first fingerprint read applies everything.
        last_seen: tuple[object, ...] | None = None
        with contextlib.suppress(OperationalError):
            last_seen = await asyncio.to_thread(self._agents.fingerprint)
        last_full = loop.time()
        while True:
            await asyncio.sleep(AGENT_SYNC_INTERVAL)
            try:
                seen = await asyncio.to_thread(self._agents.fingerprint)
            except OperationalError as exc:
                log.warning("agents_fingerprint_failed", error=str(exc))
                continue
            if seen != last_seen or loop.time() - last_full >= AGENT_FULL_SYNC:
                await self._sync_agents(sender)
                last_seen, last_full = seen, loop.time()

    async def _count_missed_ring(self, event: Event, missed: int) -> None:
        interface = event.get("Interface", "")
        login = login_of(interface)
        member = self._members.get((event.get("Queue", ""), interface))
        decision = self._autopause.decide(
            interface, missed, paused=bool(member is not None and member.paused)
        )
        if decision is None:
            return
        # The pause is the consequence: the next count starts after it.
        await self._reset_missed_rings(interface)
        if login is None or self._agents is None or self._sender is None:
            return
        log.info("agent_auto_pause", login=login, missed=decision.missed)
        try:
            await self._agents.pause(self._sender, login, decision.reason, source="auto")
        except (RosterError, AmiActionFailed, AmiUnavailable) as exc:
            log.warning("agent_auto_pause_failed", login=login, error=str(exc))

    async def _on_member_changed(self, event: Event) -> None:
        member = membership_from_event(event)
        if member is None:
            return
        previous = self._members.get((member.queue, member.interface))
        if event.get("Event") == "QueueMemberAdded" or (
            previous is not None and previous.paused != member.paused
        ):
            # A login, a break or its end starts the missed-ring count afresh. (A member merely
            # unknown here is not new: the router may have just restarted.)
            await self._reset_missed_rings(member.interface)
        self._members[(member.queue, member.interface)] = member
        await self._publish_agent(member.interface, self._at(event))

    async def _on_member_removed(self, event: Event) -> None:
        interface = event.get("Interface", "")
        self._members.pop((event.get("Queue", ""), interface), None)
        if not any(i == interface for _q, i in self._members):
            await self._reset_missed_rings(interface)
        await self._publish_agent(interface, self._at(event))

    async def _reset_missed_rings(self, interface: str) -> None:
        if not self._autopause.enabled:
            return
        try:
            await asyncio.to_thread(
                self._call_log.run, lambda session: missed_rings.reset(session, interface)
            )
        except Exception as exc:  # at worst an early auto-pause; never stop the router for it
            log.warning("missed_rings_reset_failed", interface=interface, error=first_line(exc))

    async def _publish_agent(self, interface: str, at: datetime) -> None:
        login = login_of(interface)
        if login is None:
            return
        await self._live.operator_state(login, self._operator_live(login, at))
        await self._live.queue_agents(
            queue_counts(self._members.values(), QUEUES, now=at.timestamp())
        )

    def _operator_live(self, login: str, at: datetime, name: str | None = None) -> dict[str, Any]:
        """The wallboard's view of one operator from Asterisk's membership."""
        interface = interface_of(login)
        mine = [m for (_q, i), m in sorted(self._members.items()) if i == interface]
        state = agent_state(mine, logged_in=bool(mine), now=at.timestamp())
        previous = self._operator_since.get(login)
        if previous is None or previous[0] != state:
            self._operator_since[login] = (state, at)
        since = self._operator_since[login][1]
        paused = [m for m in mine if m.paused]
        return {
            "name": name or (mine[0].name if mine else login),
            "state": state,
            "since": since.isoformat(),
            "paused": bool(mine) and len(paused) == len(mine),
            "reason": paused[0].reason if paused else None,
            "queues": [m.queue for m in mine],
        }

    async def _publish_agents(self) -> None:
        """Replace the live operator list: the roster's operators in Asterisk's state, and
        nobody else (not another installation's, nor a bare channel name)."""
        at = self._clock()
        if self._agents is not None:
            try:
                roster = await asyncio.to_thread(self._agents.roster_names)
            except OperationalError as exc:
                log.warning("agents_roster_failed", error=str(exc))
                return
        else:
            logins = (login_of(i) for _q, i in self._members)
            roster = {login: "" for login in logins if login is not None}
        states = {login: self._operator_live(login, at, name) for login, name in roster.items()}
        counts = queue_counts(self._members.values(), QUEUES, now=at.timestamp())
        await self._live.replace_operators(states, counts)

    async def _live_heartbeat(self) -> None:
        """While connected to Asterisk: tell readers the live hashes are current, and rebuild
        them when Redis lost them (flushed, restarted) or missed updates while it was down."""
        while True:
            await self._live.heartbeat(self._clock())
            if self._live.resync_needed:
                try:
                    await self._resync_live()
                except OperationalError as exc:
                    log.warning("live_resync_failed", error=str(exc))
            await asyncio.sleep(live_state.HEARTBEAT_SECONDS)

    def _on_user_event(self, event: Event) -> Effect | None:
        """Our dialplan's user events: a virtual-hold request, the FastAGI fail-safe taken, a
        call recording started."""
        name = event.get("UserEvent", "")
        if name == LAG_PROBE:
            probe = event.get("Probe", "")
            return lambda: self._probe_returned(probe)
        linkedid = event.get("Linkedid", "")
        queue = event.get("Queue") if event.get("Queue") in self._queues else None
        if not linkedid:
            return None
        if name == "HotlineCallbackRequest":
            at = self._at(event)
            result: CallbackRequest | None = self._call_log.run(
                lambda session: request_callback_in(session, linkedid, queue=queue, at=at)
            )
            if result is None:
                return None
            data = {"linkedid": linkedid, "queue": queue, "callback_id": result.callback_id}
            return lambda: self._live.publish("callback_requested", data)
        if name == "HotlineAgiFailed":
            # The dialplan's fail-safe (agi-fail): the FastAGI server died, refused or broke.
            self._call_log.record_event(
                linkedid,
                EVENT_AGI_FAILED,
                key=EVENT_AGI_FAILED,
                at=self._at(event),
                data={"status": event.get("Status", "")[:32], "queue": queue},
            )
            return None
        if name == "HotlineRecording":
            file = event.get("File", "")
            self._call_log.record_event(
                linkedid,
                EVENT_RECORDING,
                key=f"{EVENT_RECORDING}:{file}",
                at=self._at(event),
                data={"file": file, "queue": queue},
            )
        return None

    # --- health (call_router/health.py) ---------------------------------------------------

    def spool_depth(self) -> int:
        """Events kept in the durable spool while the database is away."""
        return self._backlog.spool_depth

    def health(self) -> health_report.RouterReport:
        lag = self._last_lag
        if self._probes:  # one still on its way: it is at least this late
            oldest = time.monotonic() - min(self._probes.values())
            lag = max(lag or 0.0, oldest)
        return health_report.RouterReport(
            updated_at=self._clock(),
            ami_connected=self._link is not None,
            asterisk_started_at=self._asterisk_started,
            lag_seconds=None if lag is None else round(lag, 3),
            pending_events=self._queue.qsize(),
            spool_depth=self.spool_depth(),
            database_reachable=self._db_reachable,
            backlog=len(self._backlog),
        )

    async def _health_loop(self) -> None:
        """Every few seconds: send a lag probe through Asterisk, write the router's report."""
        path = health_report.router_health_path(self._settings)
        sequence = 0
        while True:
            sender = self._link
            if sender is not None and len(self._probes) < MAX_PROBES:
                sequence += 1
                probe = f"{os.getpid()}-{sequence}"
                self._probes[probe] = time.monotonic()
                try:
                    await sender.send(
                        {"Action": "UserEvent", "UserEvent": LAG_PROBE, "Probe": probe}
                    )
                except (AmiActionFailed, AmiUnavailable) as exc:
                    self._probes.pop(probe, None)
                    log.warning("lag_probe_failed", error=str(exc))
            self._link_changed.clear()
            try:
                await asyncio.to_thread(health_report.write_router_health, path, self.health())
            except OSError as exc:
                log.warning("router_health_write_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._link_changed.wait(), health_report.HEALTH_INTERVAL)

    async def _probe_returned(self, probe: str) -> None:
        # An effect: runs on the loop once the probe's batch is written, like any event's.
        sent = self._probes.pop(probe, None)
        if sent is not None:
            self._last_lag = time.monotonic() - sent

    # --- helpers ------------------------------------------------------------------------

    def _at(self, event: Event) -> datetime:
        """Asterisk's event time when manager.conf has timestampevents=yes, else now."""
        stamp = event.get("Timestamp")
        if stamp:
            try:
                return datetime.fromtimestamp(float(stamp), UTC)
            except (ValueError, OverflowError, OSError):
                pass
        return self._clock()

    async def _publish_waiting(self, event: Event) -> None:
        count = _int(event.get("Count"))
        if count is not None:
            await self._live.queue_waiting(event.get("Queue", ""), count)


def _after_commit(act: Callable[[Event], Awaitable[None]]) -> Handler:
    """A handler that writes nothing to the call log and acts on the event afterwards."""

    def handler(event: Event) -> Effect:
        return lambda: act(event)

    return handler


def asterisk_started(date: str, time_of_day: str) -> datetime | None:
    """When Asterisk started, from CoreStatus's CoreStartupDate/Time (its local wall clock;
    the router is taken to share the machine's time zone, as the sandbox and compose do)."""
    try:
        local = datetime.strptime(f"{date.strip()} {time_of_day.strip()}", "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return None
    return local.astimezone(UTC)


def _dropped_at(started_at: datetime, item: _Reconcile) -> datetime | None:
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


def _is_inbound_first_channel(event: Event) -> bool:
    return (
        event.get("Context") == INBOUND_CONTEXT
        and bool(event.get("Linkedid"))
        and event.get("Uniqueid") == event.get("Linkedid")
    )


def _agent_fields(event: Event) -> tuple[str, str, str]:
    member = event.get("MemberName") or event.get("Interface") or "unknown"
    return event.get("Linkedid", ""), event.get("Queue", ""), member


def _leg_key(kind: str, event: Event) -> str:
    """Each ring attempt has its own operator channel: its Uniqueid makes the key unique."""
    leg = event.get("DestUniqueid") or f"{event.get('Interface', '')}:{_moment(event)}"
    return f"{kind}:{leg}"


def _moment(event: Event) -> str:
    """The event's own time if Asterisk sent one; replays of one event share it."""
    return event.get("Timestamp", "")


def _stage(call: CallView) -> str:
    if call.answered_at is not None:
        return STAGE_TALKING
    if call.queue_joined_at is not None:
        return STAGE_QUEUE
    return STAGE_MENU


# AMI counters (HoldTime, TalkTime, Position, ...) are never negative; beyond a database
# integer they are garbage that would fail the write of the whole call.
_MAX_COUNTER = 2**31 - 1


def _int(value: str | None) -> int | None:
    try:
        number = int(value) if value not in (None, "") else None
    except ValueError:
        return None
    return number if number is not None and 0 <= number <= _MAX_COUNTER else None


def _field(message: Any, name: str) -> str:
    value = message.get(name) if hasattr(message, "get") else None
    return str(value) if value is not None else ""


def _plain(event: Mapping[str, Any]) -> dict[str, str]:
    """A plain dict of strings (panoramisk repeats keys as lists, e.g. ChanVariable)."""
    plain: dict[str, str] = {}
    for key, value in event.items():
        plain[str(key)] = str(value[-1] if isinstance(value, list) and value else value)
    return plain


def _lane_of(event: Event, lanes: int) -> int:
    """Every event of one call (linkedid) goes to the same writer; the rest to the first."""
    linkedid = event.get("Linkedid", "")
    return zlib.crc32(linkedid.encode()) % lanes if linkedid else 0


def _describe(item: Mapping[str, str] | _Reconcile) -> str:
    if isinstance(item, _Reconcile):
        return "reconcile"
    return f"{item.get('Event')} linkedid={item.get('Linkedid')}"


async def serve(
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    apply_sip_bans: Apply | None = None,
) -> None:
    """Run the listener until SIGTERM/SIGINT. Migrations are the CLI's job.

    `apply_sip_bans` puts the database's active SIP bans into Asterisk (re-render and reload:
    the `hotline` CLI's job); without it bans are only recorded.
    """
    from call_router.db import Database

    db = Database(settings.db_url)
    rules = rules_of(settings)
    guard = (
        SipBanGuard(db, rules, carrier_networks(settings), apply_sip_bans)
        if rules is not None
        else None
    )
    # Entries opened, attached, closed and escalated here reach the callback pages live.
    live_state.publish_callback_changes(db, settings.redis_url, settings.redis_prefix)
    call_log = CallLog(
        db, country=settings.country_code, callback_min_wait=settings.callback_min_wait
    )
    live = LiveState.from_url(settings.redis_url, settings.redis_prefix)
    listener = AmiListener(settings, call_log, live, db=db, sip_bans=guard)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, task.cancel)
    from call_router import callback_escalation, click_to_call, report_rollups, retention

    background = [
        asyncio.create_task(callback_escalation.run_periodically(db, live)),
        asyncio.create_task(retention.run_periodically(settings, db)),
        asyncio.create_task(
            report_rollups.run_periodically(db.engine, threshold=settings.service_level_seconds)
        ),
    ]
    if guard is not None:
        background.append(asyncio.create_task(guard.run()))
    if settings.virtual_hold_autodial:
        background.append(
            asyncio.create_task(click_to_call.run_virtual_hold_dispatcher(settings, db))
        )
    try:
        await listener.run(ready=ready)
    except asyncio.CancelledError:
        log.info("router_stopped")
    finally:
        for job in background:
            job.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await live.close()
        db.dispose()


def main() -> None:
    from call_router.settings import get_settings

    asyncio.run(serve(get_settings()))
