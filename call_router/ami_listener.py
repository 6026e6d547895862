"""`hotline router`: completes every call's row from Asterisk Manager (AMI) events.

The FastAGI server writes what happens in the menu; the router writes the rest (queue,
operators, hang-up, outcome, callback entry) and mirrors live state into Redis. It must work
alone too: if the FastAGI server is down the dialplan still queues the caller, and the row is
created here from Newchannel.

This file owns the AMI link and its supervision: connect, watchdog, reconnect with backoff,
and after every (re)connect the reconcile of open calls against the channels Asterisk really
has and its queue_log and CDRs (call_router/reconcile.py), so calls that ended meanwhile get
their true outcome; the same catch-up runs after a database outage. The rest lives in:

- call_router/router_events.py: the subscribe table, each AMI event → call log + live state;
- call_router/router_writer.py: writer lanes, batches, the backlog kept while the database is away;
- call_router/router_agents.py: queue membership, agent state, missed rings, live operators.

panoramisk runs event callbacks as untracked tasks, so the only callback puts the event on an
asyncio.Queue and one consumer takes them in arrival order; panoramisk's own ping never
checks the reply, so a watchdog pings and reconnects on silence. The AMI user only gets the
events handled here (manager.conf eventfilter, hotline/asterisk/ami_users.py). At shutdown
whatever is not written yet goes to the spool, which is replayed first at the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from panoramisk import Manager
from sqlalchemy.exc import OperationalError

from call_router import health as health_report
from call_router import live_state, reconcile
from call_router.agents import AgentService
from call_router.ami_client import (
    AmiActionFailed,
    AmiUnavailable,
    ManagerSender,
    NoReconnectManager,
    wait_logged_in,
)
from call_router.autopause import AutoPausePolicy
from call_router.call_log import CallLog
from call_router.db import Database, unreachable
from call_router.event_backlog import EventBacklog
from call_router.live_state import STAGE_QUEUE, LiveState
from call_router.models import utcnow
from call_router.router_agents import AgentPresence
from call_router.router_dialplan_events import LAG_PROBE
from call_router.router_events import CallEvents, stage_of
from call_router.router_writer import EventWriter, describe
from call_router.settings import QUEUES, Settings
from call_router.sip_bans import SipBanGuard

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
# Lag probes (UserEvents sent through Asterisk) in flight at most: a stuck writer must not
# pile them up.
MAX_PROBES = 3

log = structlog.get_logger(__name__)


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
        # Asterisk's queue_log and CDRs: what happened while the router was away.
        self._records = records or reconcile.AsteriskRecords.in_log_dir(
            settings.asterisk_dir / "log"
        )
        # Agent state (call_router/agents.py): without a database the listener only logs calls.
        self.agents = AgentPresence(
            call_log,
            live,
            AgentService(db, clock=clock) if db is not None else None,
            AutoPausePolicy(settings.autopause_after_missed_rings),
            clock=clock,
        )
        self.events = CallEvents(
            call_log,
            live,
            self.agents,
            clock=clock,
            probe_returned=self._probe_returned,
            sip_bans=sip_bans,
        )
        self.writer = EventWriter(
            call_log,
            self.events.handle_batch,
            backlog or EventBacklog(settings.router_spool_path, settings.router_backlog_memory),
            # Parallel writers (by linkedid); SQLite takes one writer at a time anyway.
            lanes=1 if settings.db_url.startswith("sqlite") else settings.ami_writers,
            # Events written per transaction (1: one transaction per event, the old way).
            batch_size=max(1, settings.ami_batch_size),
            on_change=self._write_health,
        )
        # Events that failed before reaching a writer (the writer counts its own).
        self._failed_events = 0
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

    # --- connection lifecycle -------------------------------------------------------

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Forever: connect, reconcile, consume; reconnect with backoff (1, 2, 4 … 30 s)."""
        consumer = asyncio.create_task(self._consume(), name="ami-consumer")
        health_reports = asyncio.create_task(self._health_loop(), name="router-health")
        replayer = asyncio.create_task(self.writer.replay_forever(), name="ami-backlog")
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
                    await self.agents.sync(ManagerSender(manager))
                    if ready is not None:
                        ready.set()
                    helpers = [
                        asyncio.create_task(
                            self.agents.follow_roster(ManagerSender(manager)), name="ami-agents"
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
                        self.agents.sender = self._link = None
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
        lanes = asyncio.create_task(self.writer.run_lanes(), name="ami-writers")
        try:
            while True:
                item = await self._queue.get()
                try:
                    if isinstance(item, _Reconcile):
                        # It must see everything that arrived before Asterisk's snapshot.
                        await self.writer.drain()
                        if self.writer.holding():
                            # Events are waiting for the database: catch up once written.
                            item.done.set_result(0)
                            self.writer.catch_up_due.set()
                        else:
                            await self._apply_reconcile(item)
                    else:
                        self.writer.lane_of(item).put_nowait(item)
                    if self._live.resync_needed and not self.writer.holding():
                        await self._resync_live()
                except Exception:
                    self._failed_events += 1
                    log.exception("ami_event_failed", ami_event=_describe(item))
                finally:
                    self._queue.task_done()
        finally:
            lanes.cancel()

    async def _catch_up_when_due(self, manager: NoReconnectManager) -> None:
        """After an outage, once the backlog is written: the same catch-up as on reconnect."""
        while True:
            await self.writer.catch_up_due.wait()
            await self.writer.idle.wait()
            self.writer.catch_up_due.clear()
            try:
                closed = await self._reconcile(manager)
            except (OSError, TimeoutError, AmiError) as exc:  # reconnecting reconciles anyway
                log.warning("catch_up_failed", error=str(exc) or type(exc).__name__)
                return
            log.info("caught_up_after_outage", reconciled=closed)

    def _spool_pending(self) -> None:
        """At shutdown: everything not known to be written goes to the spool, in order."""
        queued: list[dict[str, str]] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, _Reconcile):
                queued.append(item)
        self.writer.spool_pending(queued)

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
                await self.writer.apply(missed)
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
            self.writer.database_lost(exc)
        finally:
            if not item.done.done():
                item.done.set_result(closed)

    async def _resync_live(self) -> None:
        calls = await asyncio.to_thread(self._call_log.open_calls)
        staged = [(call, stage_of(call)) for call in calls]
        waiting = {queue: 0 for queue in QUEUES}
        for call, stage in staged:
            if stage == STAGE_QUEUE and call.queue is not None:
                waiting[call.queue] = waiting.get(call.queue, 0) + 1
        await self._live.replace_all(staged, waiting)
        await self.agents.publish_all()

    # --- events -------------------------------------------------------------------------

    async def handle(self, event: Mapping[str, str]) -> None:
        """One AMI event (a plain dict) → call log and live state. Unknown events are ignored."""
        await self.handle_batch([event])

    async def handle_batch(self, events: Sequence[Mapping[str, str]]) -> None:
        """Events in arrival order → one database transaction, then live state in order."""
        await self.events.handle_batch(events)

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

    # --- health (call_router/health.py) ---------------------------------------------------

    def spool_depth(self) -> int:
        """Events kept in the durable spool while the database is away."""
        return self.writer.backlog.spool_depth

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
            database_reachable=self.writer.db_reachable,
            backlog=len(self.writer.backlog),
            failed_events=self._failed_events + self.writer.failed_events,
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
                    replies = await sender.send(
                        {"Action": "UserEvent", "UserEvent": LAG_PROBE, "Probe": probe}
                    )
                    if replies and replies[0].get("Response") == "Error":
                        # Refused (e.g. an AMI user without the "user" write class): it will
                        # never come back, and a probe kept waiting would read as a growing lag.
                        raise AmiActionFailed("UserEvent", replies[0].get("Message") or "refused")
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


def _field(message: Any, name: str) -> str:
    value = message.get(name) if hasattr(message, "get") else None
    return str(value) if value is not None else ""


def _plain(event: Mapping[str, Any]) -> dict[str, str]:
    """A plain dict of strings (panoramisk repeats keys as lists, e.g. ChanVariable)."""
    plain: dict[str, str] = {}
    for key, value in event.items():
        plain[str(key)] = str(value[-1] if isinstance(value, list) and value else value)
    return plain


def _describe(item: Mapping[str, str] | _Reconcile) -> str:
    return "reconcile" if isinstance(item, _Reconcile) else describe(item)
