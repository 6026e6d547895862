"""The router's health report: lag probes through Asterisk and the report file they feed.

A probe is a UserEvent timed until its handler ran; the report (call_router/health.py) is
rewritten every few seconds and at once on a change."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable
from datetime import datetime

import structlog

from call_router import health as health_report
from call_router.ami_client import AmiActionFailed, AmiUnavailable, ManagerSender
from call_router.router_dialplan_events import LAG_PROBE
from call_router.router_writer import EventWriter
from call_router.settings import Settings

# Lag probes (UserEvents sent through Asterisk) in flight at most: a stuck writer must not
# pile them up.
MAX_PROBES = 3

log = structlog.get_logger(__name__)


class ListenerHealth:
    """What the router says about itself: its AMI link, this Asterisk's start, the lag of its
    event handling, the events waiting, spooled and failed."""

    def __init__(
        self,
        settings: Settings,
        writer: EventWriter,
        *,
        clock: Callable[[], datetime],
        pending_events: Callable[[], int],
        failed_events: Callable[[], int],
        unlogged_since: Callable[[], datetime | None] = lambda: None,
    ) -> None:
        self._settings = settings
        self._writer = writer
        self._clock = clock
        self._pending_events = pending_events
        self._failed_events = failed_events
        self._unlogged_since = unlogged_since
        # This Asterisk's start, and lag probes in flight (a UserEvent sent through Asterisk
        # and timed until its handler ran).
        self._asterisk_started: datetime | None = None
        self._probes: dict[str, float] = {}
        self._last_lag: float | None = None
        # The live AMI link while connected and reconciled (None otherwise).
        self._link: ManagerSender | None = None
        # Set when the link comes or goes: the report is rewritten at once.
        self._link_changed = asyncio.Event()
        # When the link was last up: this process's, or the report of the router before it.
        self._heard_until = heard_until_of(health_report.read_router_report(settings))

    def asterisk_connected(self, started_at: datetime | None) -> None:
        """A (re)connect: a new Asterisk's start; probes sent to the old one never return."""
        self._asterisk_started, self._probes = started_at, {}

    def link_changed(self, link: ManagerSender | None) -> None:
        if link is None and self._link is not None and not self._writer.holding():
            self._heard_until = self._clock()
        self._link = link
        self._link_changed.set()

    def heard_until(self) -> datetime | None:
        """Until when the router has every event Asterisk sent, written or safe on disk: now
        while the link is up and nothing waits for the database; else when that was last so
        (in this process, or in the router that ran before it); earlier still while a search
        for unlogged calls from before is owed. None if no router here ever had a link.

        Events held in memory for the database would die with a killed router: until they
        are written, the moment stays where the outage found it."""
        if self._link is not None and not self._writer.holding():
            self._heard_until = self._clock()
        owed = self._unlogged_since()
        if owed is not None and (self._heard_until is None or owed < self._heard_until):
            return owed
        return self._heard_until

    def report(self) -> health_report.RouterReport:
        lag = self._last_lag
        if self._probes:  # one still on its way: it is at least this late
            oldest = time.monotonic() - min(self._probes.values())
            lag = max(lag or 0.0, oldest)
        return health_report.RouterReport(
            updated_at=self._clock(),
            ami_connected=self._link is not None,
            asterisk_started_at=self._asterisk_started,
            lag_seconds=None if lag is None else round(lag, 3),
            pending_events=self._pending_events(),
            spool_depth=self._writer.backlog.spool_depth,
            database_reachable=self._writer.db_reachable,
            backlog=len(self._writer.backlog),
            failed_events=self._failed_events() + self._writer.failed_events,
            heard_until=self.heard_until(),
        )

    def write_now(self) -> None:
        """At once, on a change the report shows (outage, backlog, a probe's return)."""
        try:
            health_report.write_router_health(
                health_report.router_health_path(self._settings), self.report()
            )
        except OSError as exc:  # health is a report: never stop the router for it
            log.warning("router_health_write_failed", error=str(exc))

    async def run(self) -> None:
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
                await asyncio.to_thread(health_report.write_router_health, path, self.report())
            except OSError as exc:
                log.warning("router_health_write_failed", error=str(exc))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._link_changed.wait(), health_report.HEALTH_INTERVAL)

    async def probe_returned(self, probe: str) -> None:
        # An effect: runs on the loop once the probe's batch is written, like any event's.
        sent = self._probes.pop(probe, None)
        if sent is not None:
            self._last_lag = time.monotonic() - sent


def heard_until_of(report: health_report.RouterReport | None) -> datetime | None:
    """What an earlier router's last report says it had heard (a report written before the
    field existed: its own time, if its link was up then)."""
    if report is None:
        return None
    if report.heard_until is not None:
        return report.heard_until
    return report.updated_at if report.ami_connected else None
