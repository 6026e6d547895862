"""Agent state: who is logged in to which queue, who is paused and why.

The database holds the *desired* state (call_router.agent_models.AgentState); Asterisk's queue
membership is made to match it with QueueAdd / QueueRemove / QueuePause / QueuePenalty. The CLI
and the dashboard API change the desired state and apply it at once over a short AMI connection;
the router re-applies it after every (re)connect and whenever the roster changes, so an Asterisk
restart (which forgets dynamic members) or an operator added with `hotline operators add` is
taken care of without anyone logging in again.

Queue members are dynamic (QueueAdd) rather than static lines in queues.conf: static members
cannot be removed over AMI, and "log out" must really stop the queue from counting the operator.
An operator with no AgentState row is logged in to all their skills: the roster's default.

The pure parts (`plan`, `agent_state`, `queue_counts`, `parse_members`) take plain values and
are in agent_membership.py; the desired state's rows are agent_store.py; `AgentService` here
does the I/O.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.agent_membership import (
    DEVICE_STATES,
    STATE_LOGGED_OUT,
    STATE_PAUSED,
    DesiredAgent,
    Membership,
    agent_state,
    interface_of,
    login_of,
    parse_members,
    plan,
)
from call_router.agent_models import AgentState
from call_router.agent_store import (
    desired_agents,
    record_login,
    record_logout,
    record_pause,
    record_queues,
)
from call_router.ami_client import AmiActionFailed, AmiSender, Reply
from call_router.db import Database
from call_router.models import Operator, utcnow
from call_router.operators import RosterError, list_operators

log = structlog.get_logger(__name__)

__all__ = ["AgentService", "AgentView", "QueueMembershipView", "interface_of", "login_of"]


@dataclass(frozen=True)
class QueueMembershipView:
    queue: str
    penalty: int
    paused: bool


@dataclass(frozen=True)
class AgentView:
    login: str
    name: str
    state: str
    logged_in: bool
    paused: bool
    pause_reason: str | None
    device: str
    since: datetime | None
    queues: list[QueueMembershipView] = field(default_factory=list)
    # Desired and actual differ (Asterisk down, or a change not applied yet).
    pending: bool = False


class AgentService:
    """Desired state in the database, applied to Asterisk through an AmiSender."""

    def __init__(self, db: Database, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = db
        self._clock = clock

    # -- changes (CLI, API, router) --

    async def login(
        self, ami: AmiSender | None, login: str, queues: Sequence[str] | None, source: str
    ) -> AgentView:
        await self._write(lambda s: record_login(s, login, queues, source, self._clock()))
        return await self._applied(ami, login)

    async def logout(self, ami: AmiSender | None, login: str, source: str) -> AgentView:
        await self._write(lambda s: record_logout(s, login, source, self._clock()))
        return await self._applied(ami, login)

    async def pause(self, ami: AmiSender | None, login: str, reason: str, source: str) -> AgentView:
        await self._write(lambda s: record_pause(s, login, True, reason, source, self._clock()))
        return await self._applied(ami, login)

    async def unpause(self, ami: AmiSender | None, login: str, source: str) -> AgentView:
        await self._write(lambda s: record_pause(s, login, False, None, source, self._clock()))
        return await self._applied(ami, login)

    async def set_queues(
        self, ami: AmiSender | None, login: str, spec: str, source: str
    ) -> AgentView:
        await self._write(lambda s: record_queues(s, login, spec, source, self._clock()))
        return await self._applied(ami, login)

    def roster_names(self) -> dict[str, str]:
        """login → name of every enabled operator: the live board lists no one else."""
        with self._db.session() as session:
            return {op.sip_login: op.name for op in list_operators(session, enabled_only=True)}

    def fingerprint(self) -> tuple[object, ...]:
        """Changes whenever the desired membership changes (roster edit, login, pause ...)."""
        desired, managed = self._read_desired()
        return (
            tuple(
                (a.login, a.name, tuple(sorted(a.queues.items())), a.paused, a.reason)
                for a in desired
            ),
            tuple(sorted(managed)),
        )

    # -- Asterisk --

    async def members(self, ami: AmiSender) -> list[Membership]:
        return parse_members(await ami.send({"Action": "QueueStatus"}, many=True))

    async def sync(self, ami: AmiSender, *, only: str | None = None) -> list[dict[str, str]]:
        """Apply the desired state (of one operator, or everyone); returns the actions sent."""
        # Asterisk first, the database second: the CLI and the API write the database before
        # they apply a change, so a change Asterisk already shows is in the desired state read
        # after it; read the other way round, a change made in between was undone until the
        # next pass (a stale "paused" re-applied to an operator just back from lunch).
        actual = await self.members(ami)
        desired, managed = await asyncio.to_thread(self._read_desired)
        if only is not None:
            desired = [a for a in desired if a.login == only]
            managed = {interface_of(only)}
            actual = [m for m in actual if m.interface in managed]
        actions = plan(desired, actual, managed=managed)
        for action in actions:
            await self._send(ami, action)
        if actions:
            log.info("agents_synced", actions=[_describe(a) for a in actions])
        return actions

    async def views(self, ami: AmiSender | None) -> list[AgentView]:
        actual = await self.members(ami) if ami is not None else None
        return await asyncio.to_thread(self._views, actual)

    # -- internals --

    async def _applied(self, ami: AmiSender | None, login: str) -> AgentView:
        actual: list[Membership] | None = None
        if ami is not None:
            await self.sync(ami, only=login)
            actual = await self.members(ami)
        views = await asyncio.to_thread(self._views, actual, login)
        return views[0]

    async def _send(self, ami: AmiSender, action: Mapping[str, str]) -> None:
        replies = await ami.send(action)
        first: Reply = replies[0] if replies else {}
        if first.get("Response", "").lower() in ("error", "fail", "failure"):
            message = first.get("Message", "")
            # A race with another writer (router vs CLI) that already did the same thing.
            if "Already there" in message or "Not there" in message:
                return
            raise AmiActionFailed(action.get("Action", "?"), message)

    async def _write(self, change: Callable[[Session], object]) -> None:
        def run() -> None:
            with self._db.session() as session:
                change(session)

        await asyncio.to_thread(run)

    def _read_desired(self) -> tuple[list[DesiredAgent], set[str]]:
        with self._db.session() as session:
            return desired_agents(session)

    def _views(self, actual: list[Membership] | None, only: str | None = None) -> list[AgentView]:
        now = self._clock()
        with self._db.session() as session:
            desired, _managed = desired_agents(session)
            wanted = {a.login: a for a in desired}
            rows = {r.sip_login: r for r in session.scalars(select(AgentState))}
            views = []
            for op in list_operators(session):
                if only is not None and op.sip_login != only:
                    continue
                agent = wanted.get(op.sip_login)
                row = rows.get(op.sip_login)
                mine = [m for m in actual or [] if m.interface == interface_of(op.sip_login)]
                views.append(_view(op, agent, row, mine, actual is not None, now.timestamp()))
        if only is not None and not views:
            raise RosterError(f"no operator with SIP login {only!r}")
        return views


def _view(
    op: Operator,
    agent: DesiredAgent | None,
    row: AgentState | None,
    mine: list[Membership],
    known: bool,
    now: float,
) -> AgentView:
    logged_in = agent is not None
    if known:
        state = agent_state(mine, logged_in=logged_in, now=now)
        device = DEVICE_STATES.get(mine[0].status, "unknown") if mine else "unknown"
        queues = [QueueMembershipView(m.queue, m.penalty, m.paused) for m in mine]
        expected = set(agent.queues.items()) if agent else set()
        pending = expected != {(m.queue, m.penalty) for m in mine} or any(
            m.paused != (agent.paused if agent else False) for m in mine
        )
    else:
        # Asterisk unreachable: report the desired state, flagged as not confirmed.
        device = "unknown"
        pending = True
        if agent is None:
            state, queues = STATE_LOGGED_OUT, []
        else:
            state = STATE_PAUSED if agent.paused else "unknown"
            queues = [QueueMembershipView(q, p, agent.paused) for q, p in agent.queues.items()]
    return AgentView(
        login=op.sip_login,
        name=op.name,
        state=state,
        logged_in=logged_in,
        paused=bool(agent and agent.paused),
        pause_reason=(agent.reason or None) if agent and agent.paused else None,
        device=device,
        since=row.since if row is not None else op.created_at,
        queues=sorted(queues, key=lambda q: q.queue),
        pending=pending,
    )


def _describe(action: Mapping[str, str]) -> str:
    return f"{action.get('Action')} {action.get('Queue', '*')} {action.get('Interface')}"
