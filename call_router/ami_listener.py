"""`hotline router`'s AMI listener: the event stream's connection, supervision and consumer.

The router completes every call's row from Asterisk Manager (AMI) events.

The FastAGI server writes what happens in the menu; the router writes the rest (queue,
operators, hang-up, outcome, callback entry) and mirrors live state into Redis. It must work
alone too: if the FastAGI server is down the dialplan still queues the caller, and the row is
created here from Newchannel.

This file owns the AMI link and its supervision: connect, watchdog, reconnect with backoff,
the one consumer of the event queue, and after every (re)connect a request to reconcile open
calls against the channels Asterisk really has, so calls that ended meanwhile get their true
outcome; the same catch-up runs after a database outage. The rest lives in:

- call_router/router_events.py: the subscribe table, each AMI event → call log + live state;
- call_router/router_writer.py: writer lanes, batches, the backlog kept while the database is away;
- call_router/router_agents.py: queue membership, agent state, missed rings, live operators;
- call_router/listener_reconcile.py: the catch-up itself (Asterisk's queue_log and CDRs through
  call_router/reconcile.py, closing vanished calls, rebuilding live state);
- call_router/listener_health.py: lag probes and the router's health report.

panoramisk runs event callbacks as untracked tasks, so the only callback puts the event on an
asyncio.Queue and one consumer takes them in arrival order; panoramisk's own ping never
checks the reply, so a watchdog pings and reconnects on silence. The AMI user only gets the
events handled here (manager.conf eventfilter, hotline/asterisk/ami_users.py). At shutdown
whatever is not written yet goes to the spool, which is replayed first at the next start.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import structlog
from panoramisk import Manager
from sqlalchemy.exc import OperationalError

from call_router import health as health_report
from call_router import live_state, reconcile
from call_router.agents import AgentService
from call_router.ami_client import (
    AmiUnavailable,
    ManagerSender,
    NoReconnectManager,
    plain,
    wait_logged_in,
)
from call_router.autopause import AutoPausePolicy
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.event_backlog import EventBacklog
from call_router.listener_health import ListenerHealth
from call_router.listener_reconcile import Reconciler, ReconcileRequest, asterisk_started
from call_router.live_state import LiveState
from call_router.models import utcnow
from call_router.router_agents import AgentPresence
from call_router.router_events import CallEvents
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
BACKOFF_FIRST = 1.0
BACKOFF_MAX = 30.0

log = structlog.get_logger(__name__)


class AmiError(Exception):
    """The AMI connection is unusable (login refused, no pong, connection lost)."""


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
        self._queue: asyncio.Queue[dict[str, str] | ReconcileRequest] = asyncio.Queue()
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
        self.reconciler = Reconciler(
            call_log,
            live,
            self.agents,
            self.writer,
            # Asterisk's queue_log and CDRs: what happened while the router was away.
            records or reconcile.AsteriskRecords.in_log_dir(settings.asterisk_dir / "log"),
            clock,
        )
        # Events that failed before reaching a writer (the writer counts its own).
        self._failed_events = 0
        # When the AMI link was last lost: the moment Asterisk went away if it was restarted.
        self._link_lost_at: datetime | None = None
        self._health = ListenerHealth(
            settings,
            self.writer,
            clock=clock,
            pending_events=self._queue.qsize,
            failed_events=lambda: self._failed_events,
            unlogged_since=lambda: self.reconciler.unlogged_since,
        )

    # --- connection lifecycle -------------------------------------------------------

    async def run(self, *, ready: asyncio.Event | None = None) -> None:
        """Forever: connect, reconcile, consume; reconnect with backoff (1, 2, 4 … 30 s)."""
        consumer = asyncio.create_task(self._consume(), name="ami-consumer")
        health_reports = asyncio.create_task(self._health.run(), name="router-health")
        replayer = asyncio.create_task(self.writer.replay_forever(), name="ami-backlog")
        backoff = BACKOFF_FIRST
        try:
            while True:
                manager = self._new_manager()
                try:
                    await self._connect(manager)
                    backoff = BACKOFF_FIRST
                    started_at = await self._asterisk_started_at(manager)
                    self._health.asterisk_connected(started_at)
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
                    self._health.link_changed(ManagerSender(manager))
                    try:
                        await self._watch(manager)
                    finally:
                        for helper in helpers:
                            helper.cancel()
                        self.agents.sender = None
                        self._health.link_changed(None)
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
        self._queue.put_nowait(plain(event))

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
                raise AmiError(f"bad reply to AMI Ping: {plain(reply)}")
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
            log.warning("asterisk_start_unknown", reply=plain(reply))
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
            raise AmiError(f"CoreShowChannels failed: {plain(messages[0])}")
        uniqueids = frozenset(
            _field(m, "Uniqueid") for m in messages if _field(m, "Event") == "CoreShowChannel"
        )
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(
            ReconcileRequest(
                uniqueids,
                requested_at,
                done,
                asterisk_started_at,
                self._link_lost_at,
                heard_until=self._health.heard_until(),
            )
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
                    if isinstance(item, ReconcileRequest):
                        # It must see everything that arrived before Asterisk's snapshot.
                        await self.writer.drain()
                        if self.writer.holding():
                            # Events are waiting for the database: catch up once written
                            # (searching for unlogged calls from this request's moment on).
                            self.reconciler.owe_unlogged_search(item.heard_until)
                            item.done.set_result(0)
                            self.writer.catch_up_due.set()
                        else:
                            await self.reconciler.apply(item)
                    else:
                        self.writer.lane_of(item).put_nowait(item)
                    if self._live.resync_needed and not self.writer.holding():
                        await self.reconciler.resync_live()
                except Exception:
                    self._failed_events += 1
                    log.exception("ami_event_failed", ami_event=_describe(item))
                finally:
                    self._queue.task_done()
        finally:
            lanes.cancel()

    async def _catch_up_when_due(self, manager: NoReconnectManager) -> None:
        """After an outage, once the backlog is written: the same catch-up as on reconnect.

        A failed catch-up (a slow or refused CoreShowChannels while the link stays up) is
        retried with a capped backoff; a lost link cancels this task and the reconnect
        reconciles anyway."""
        delay = BACKOFF_FIRST
        while True:
            await self.writer.catch_up_due.wait()
            await self.writer.idle.wait()
            self.writer.catch_up_due.clear()
            try:
                closed = await self._reconcile(manager)
            except Exception as exc:
                self.writer.catch_up_due.set()  # still owed
                log.warning("catch_up_failed", error=str(exc) or type(exc).__name__, retry_in=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MAX)
                continue
            delay = BACKOFF_FIRST
            log.info("caught_up_after_outage", reconciled=closed)

    def _spool_pending(self) -> None:
        """At shutdown: everything not known to be written goes to the spool, in order."""
        queued: list[dict[str, str]] = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not isinstance(item, ReconcileRequest):
                queued.append(item)
        self.writer.spool_pending(queued)

    def _write_health(self) -> None:
        self._health.write_now()

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
                    await self.reconciler.resync_live()
                except OperationalError as exc:
                    log.warning("live_resync_failed", error=str(exc))
            await asyncio.sleep(live_state.HEARTBEAT_SECONDS)

    # --- health (call_router/health.py) ---------------------------------------------------

    def spool_depth(self) -> int:
        """Events kept in the durable spool while the database is away."""
        return self.writer.backlog.spool_depth

    def health(self) -> health_report.RouterReport:
        return self._health.report()

    async def _probe_returned(self, probe: str) -> None:
        await self._health.probe_returned(probe)


def _field(message: Any, name: str) -> str:
    value = message.get(name) if hasattr(message, "get") else None
    return str(value) if value is not None else ""


def _describe(item: Mapping[str, str] | ReconcileRequest) -> str:
    return "reconcile" if isinstance(item, ReconcileRequest) else describe(item)
