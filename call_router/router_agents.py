"""Operators as Asterisk sees them: queue membership (from QueueStatus and QueueMember*
events), the roster's desired agent state applied to Asterisk (call_router/agents.py), missed
rings and auto-pause, and the live operator list the wallboard shows."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.exc import OperationalError

from call_router import missed_rings
from call_router.agent_membership import (
    Membership,
    agent_state,
    interface_of,
    login_of,
    membership_from_event,
    queue_counts,
)
from call_router.agents import AgentService
from call_router.ami_client import AmiActionFailed, AmiUnavailable, ManagerSender
from call_router.autopause import AutoPausePolicy
from call_router.call_log import CallLog
from call_router.db import first_line
from call_router.live_state import LiveState
from call_router.operators import RosterError
from call_router.router_event_fields import Event, event_time
from call_router.settings import QUEUES

# How often the roster / desired state is checked for changes to apply, and how often
# Asterisk's membership is compared in full anyway (someone used the Asterisk CLI).
AGENT_SYNC_INTERVAL = 2.0
AGENT_FULL_SYNC = 60.0

log = structlog.get_logger(__name__)


class AgentPresence:
    """Membership in memory, agent state in the database (without one: logging calls only)."""

    def __init__(
        self,
        call_log: CallLog,
        live: LiveState,
        service: AgentService | None,
        autopause: AutoPausePolicy,
        *,
        clock: Callable[[], datetime],
    ) -> None:
        self._call_log = call_log
        self._live = live
        self.service = service
        self._autopause = autopause
        self._clock = clock
        # The AMI link agent actions go over (set by the first sync after a connect).
        self.sender: ManagerSender | None = None
        # (queue, interface) → membership, from QueueStatus and QueueMember* events.
        self.members: dict[tuple[str, str], Membership] = {}
        # login → (state, since) for the wallboard's "since".
        self._operator_since: dict[str, tuple[str, datetime]] = {}

    @property
    def autopause_enabled(self) -> bool:
        return self._autopause.enabled

    async def sync(self, sender: ManagerSender) -> None:
        """Apply the desired agent state and refresh the membership snapshot; never fatal."""
        if self.service is None:
            return
        self.sender = sender
        try:
            await self.service.sync(sender)
            members = await self.service.members(sender)
        except (AmiActionFailed, AmiUnavailable, OperationalError) as exc:
            log.warning("agents_sync_failed", error=str(exc))
            return
        self.members = {(m.queue, m.interface): m for m in members}
        await self.publish_all()

    async def follow_roster(self, sender: ManagerSender) -> None:
        """Apply roster / agent-state changes made elsewhere (CLI, API, `operators add`)."""
        if self.service is None:
            return
        loop = asyncio.get_running_loop()
        # None: not known (the database was away when the link came up, so the sync before
        # "ready" failed too): the first fingerprint read applies everything.
        last_seen: tuple[object, ...] | None = None
        with contextlib.suppress(OperationalError):
            last_seen = await asyncio.to_thread(self.service.fingerprint)
        last_full = loop.time()
        while True:
            await asyncio.sleep(AGENT_SYNC_INTERVAL)
            try:
                seen = await asyncio.to_thread(self.service.fingerprint)
            except OperationalError as exc:
                log.warning("agents_fingerprint_failed", error=str(exc))
                continue
            if seen != last_seen or loop.time() - last_full >= AGENT_FULL_SYNC:
                await self.sync(sender)
                last_seen, last_full = seen, loop.time()

    async def count_missed_ring(self, event: Event, missed: int) -> None:
        interface = event.get("Interface", "")
        login = login_of(interface)
        member = self.members.get((event.get("Queue", ""), interface))
        decision = self._autopause.decide(
            interface, missed, paused=bool(member is not None and member.paused)
        )
        if decision is None:
            return
        # The pause is the consequence: the next count starts after it.
        await self._reset_missed_rings(interface)
        if login is None or self.service is None or self.sender is None:
            return
        log.info("agent_auto_pause", login=login, missed=decision.missed)
        try:
            await self.service.pause(self.sender, login, decision.reason, source="auto")
        except (RosterError, AmiActionFailed, AmiUnavailable) as exc:
            log.warning("agent_auto_pause_failed", login=login, error=str(exc))

    async def on_member_changed(self, event: Event) -> None:
        member = membership_from_event(event)
        if member is None:
            return
        previous = self.members.get((member.queue, member.interface))
        if event.get("Event") == "QueueMemberAdded" or (
            previous is not None and previous.paused != member.paused
        ):
            # A login, a break or its end starts the missed-ring count afresh. (A member merely
            # unknown here is not new: the router may have just restarted.)
            await self._reset_missed_rings(member.interface)
        self.members[(member.queue, member.interface)] = member
        await self._publish_one(member.interface, event_time(event, self._clock))

    async def on_member_removed(self, event: Event) -> None:
        interface = event.get("Interface", "")
        self.members.pop((event.get("Queue", ""), interface), None)
        if not any(i == interface for _q, i in self.members):
            await self._reset_missed_rings(interface)
        await self._publish_one(interface, event_time(event, self._clock))

    async def _reset_missed_rings(self, interface: str) -> None:
        if not self.autopause_enabled:
            return
        try:
            await asyncio.to_thread(
                self._call_log.run, lambda session: missed_rings.reset(session, interface)
            )
        except Exception as exc:  # at worst an early auto-pause; never stop the router for it
            log.warning("missed_rings_reset_failed", interface=interface, error=first_line(exc))

    async def _publish_one(self, interface: str, at: datetime) -> None:
        login = login_of(interface)
        if login is None:
            return
        await self._live.operator_state(login, self._operator_live(login, at))
        await self._live.queue_agents(
            queue_counts(self.members.values(), QUEUES, now=at.timestamp())
        )

    def _operator_live(self, login: str, at: datetime, name: str | None = None) -> dict[str, Any]:
        """The wallboard's view of one operator from Asterisk's membership."""
        interface = interface_of(login)
        mine = [m for (_q, i), m in sorted(self.members.items()) if i == interface]
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

    async def publish_all(self) -> None:
        """Replace the live operator list: the roster's operators in Asterisk's state, and
        nobody else (not another installation's, nor a bare channel name)."""
        at = self._clock()
        if self.service is not None:
            try:
                roster = await asyncio.to_thread(self.service.roster_names)
            except OperationalError as exc:
                log.warning("agents_roster_failed", error=str(exc))
                return
        else:
            logins = (login_of(i) for _q, i in self.members)
            roster = {login: "" for login in logins if login is not None}
        states = {login: self._operator_live(login, at, name) for login, name in roster.items()}
        counts = queue_counts(self.members.values(), QUEUES, now=at.timestamp())
        await self._live.replace_operators(states, counts)
