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

The pure parts (`plan`, `agent_view`, `queue_counts`, `parse_members`) take plain values and are
unit-tested; the I/O is in `AgentService`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.agent_models import AgentState, AgentStateLog
from call_router.ami_client import AmiActionFailed, AmiSender, Reply
from call_router.db import Database
from call_router.models import Operator, OperatorSkill, utcnow
from call_router.operators import RosterError, Skill, list_operators, skills_for_tenant

log = structlog.get_logger(__name__)

MAX_REASON = 64

# Asterisk device states (AST_DEVICE_*) as QueueMember events report them in `Status`.
DEVICE_STATES = {
    0: "unknown",
    1: "not_inuse",
    2: "inuse",
    3: "busy",
    4: "invalid",
    5: "unavailable",
    6: "ringing",
    7: "ringinuse",
    8: "onhold",
}
_BUSY = {"inuse", "busy", "ringinuse", "onhold"}
_OFFLINE = {"invalid", "unavailable", "unknown"}

# The operator's state as the wallboard shows it, most important first.
STATE_LOGGED_OUT = "logged_out"
STATE_OFFLINE = "offline"  # logged in, but the softphone is not registered
STATE_PAUSED = "paused"
STATE_BUSY = "busy"
STATE_RINGING = "ringing"
STATE_WRAPUP = "wrapup"
STATE_FREE = "free"


def interface_of(login: str) -> str:
    return f"PJSIP/{login}"


def login_of(interface: str) -> str | None:
    """`PJSIP/1001` → `1001`; None for anything that is not one of our operators' endpoints."""
    tech, _, rest = interface.partition("/")
    return rest if tech.upper() == "PJSIP" and rest and "/" not in rest else None


# --- plain values -------------------------------------------------------------------------


@dataclass(frozen=True)
class Membership:
    """One operator in one queue, as Asterisk has it."""

    queue: str
    interface: str
    name: str
    penalty: int
    paused: bool
    reason: str
    status: int
    in_call: bool
    dynamic: bool
    last_call: int = 0  # Unix time the last call ended, 0 if none
    wrapup: int = 0


@dataclass(frozen=True)
class DesiredAgent:
    login: str
    name: str
    queues: Mapping[str, int]  # queue → penalty; empty when logged out
    paused: bool = False
    reason: str = ""

    @property
    def interface(self) -> str:
        return interface_of(self.login)


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


def _bool(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def membership_from_event(event: Mapping[str, str]) -> Membership | None:
    """A QueueMember (QueueStatus reply) or QueueMember* event → Membership."""
    interface = event.get("Interface") or event.get("Location") or ""
    queue = event.get("Queue", "")
    if not interface or not queue:
        return None
    return Membership(
        queue=queue,
        interface=interface,
        name=event.get("MemberName", "") or interface,
        penalty=_int(event.get("Penalty")),
        paused=_bool(event.get("Paused")),
        reason=event.get("PausedReason", "") or "",
        status=_int(event.get("Status")),
        in_call=_bool(event.get("InCall")),
        dynamic=(event.get("Membership", "dynamic").lower() != "static"),
        last_call=_int(event.get("LastCall")),
        wrapup=_int(event.get("Wrapuptime")),
    )


def parse_members(replies: Iterable[Mapping[str, str]]) -> list[Membership]:
    members = []
    for reply in replies:
        if reply.get("Event") == "QueueMember":
            member = membership_from_event(reply)
            if member is not None:
                members.append(member)
    return members


def plan(
    desired: Sequence[DesiredAgent],
    actual: Sequence[Membership],
    *,
    managed: Iterable[str] = (),
) -> list[dict[str, str]]:
    """The AMI actions that make Asterisk's membership match `desired`.

    Only PJSIP members are touched: desired agents' interfaces, `managed` interfaces (roster
    operators now disabled or logged out) and dynamic PJSIP members nobody wants any more.
    Static members (if an admin keeps some in queues.conf) are never removed.
    """
    want = {(q, a.interface): (a, penalty) for a in desired for q, penalty in a.queues.items()}
    have = {(m.queue, m.interface): m for m in actual}
    managed_set = set(managed) | {a.interface for a in desired}
    actions: list[dict[str, str]] = []
    for (queue, interface), member in sorted(have.items()):
        if (queue, interface) in want or not member.dynamic:
            continue
        if interface in managed_set or login_of(interface) is not None:
            actions.append({"Action": "QueueRemove", "Queue": queue, "Interface": interface})
    for (queue, interface), (agent, penalty) in sorted(want.items()):
        present = have.get((queue, interface))
        if present is None:
            actions.append(
                {
                    "Action": "QueueAdd",
                    "Queue": queue,
                    "Interface": interface,
                    "Penalty": str(penalty),
                    "Paused": "true" if agent.paused else "false",
                    "MemberName": agent.name,
                    # Device state (ringing, in use, unregistered) comes from the endpoint.
                    "StateInterface": interface,
                }
            )
            if agent.paused and agent.reason:
                actions.append(_pause_action(queue, interface, True, agent.reason))
            continue
        if present.penalty != penalty:
            actions.append(
                {
                    "Action": "QueuePenalty",
                    "Queue": queue,
                    "Interface": interface,
                    "Penalty": str(penalty),
                }
            )
        if present.paused != agent.paused or (agent.paused and present.reason != agent.reason):
            actions.append(_pause_action(queue, interface, agent.paused, agent.reason))
    return actions


def _pause_action(queue: str, interface: str, paused: bool, reason: str) -> dict[str, str]:
    action = {
        "Action": "QueuePause",
        "Queue": queue,
        "Interface": interface,
        "Paused": "true" if paused else "false",
    }
    if paused and reason:
        action["Reason"] = reason
    return action


def agent_state(memberships: Sequence[Membership], *, logged_in: bool, now: float) -> str:
    """One operator's state across all their queues."""
    if not logged_in or not memberships:
        return STATE_LOGGED_OUT
    device = DEVICE_STATES.get(memberships[0].status, "unknown")
    if any(m.in_call for m in memberships) or device in _BUSY:
        return STATE_BUSY
    if device in _OFFLINE:
        return STATE_OFFLINE
    if device == "ringing":
        return STATE_RINGING
    if all(m.paused for m in memberships):
        return STATE_PAUSED
    if any(m.wrapup and m.last_call and now - m.last_call < m.wrapup for m in memberships):
        return STATE_WRAPUP
    return STATE_FREE


def queue_counts(
    members: Iterable[Membership], queues: Iterable[str], *, now: float
) -> dict[str, dict[str, int]]:
    """Per queue: operators free / busy / paused / offline (the wallboard's queue line)."""
    counts = {q: {"free": 0, "busy": 0, "paused": 0, "offline": 0} for q in queues}
    for m in members:
        if m.queue not in counts:
            continue
        state = agent_state([m], logged_in=True, now=now)
        bucket = {
            STATE_FREE: "free",
            STATE_WRAPUP: "busy",
            STATE_RINGING: "busy",
            STATE_BUSY: "busy",
            STATE_PAUSED: "paused",
        }.get(state, "offline")
        counts[m.queue][bucket] += 1
    return counts


# --- the database: desired state -------------------------------------------------------


def _row(session: Session, login: str) -> AgentState | None:
    return session.scalar(select(AgentState).where(AgentState.sip_login == login))


def _operator(session: Session, login: str) -> Operator:
    for op in list_operators(session):
        if op.sip_login == login:
            if not op.enabled:
                raise RosterError(f"operator {login!r} is disabled")
            return op
    raise RosterError(f"no operator with SIP login {login!r}")


def desired_agents(session: Session) -> tuple[list[DesiredAgent], set[str]]:
    """(agents who should be queue members, every roster interface we manage)."""
    rows = {row.sip_login: row for row in session.scalars(select(AgentState))}
    desired: list[DesiredAgent] = []
    managed: set[str] = set()
    for op in list_operators(session):
        managed.add(interface_of(op.sip_login))
        row = rows.get(op.sip_login)
        if not op.enabled or (row is not None and not row.logged_in):
            continue
        skills = {s.queue: s.penalty for s in op.skills}
        chosen = row.queues if row is not None and row.queues is not None else list(skills)
        queues = {q: skills[q] for q in chosen if q in skills}
        desired.append(
            DesiredAgent(
                login=op.sip_login,
                name=op.name,
                queues=queues,
                paused=bool(row and row.paused),
                reason=(row.pause_reason or "") if row else "",
            )
        )
    return desired, managed


def _upsert(session: Session, login: str, now: datetime) -> AgentState:
    row = _row(session, login)
    if row is None:
        row = AgentState(sip_login=login, logged_in=True, queues=None, paused=False, since=now)
        session.add(row)
    row.updated_at = now
    return row


def _log(
    session: Session,
    login: str,
    action: str,
    source: str,
    now: datetime,
    reason: str | None = None,
    **data: object,
) -> None:
    session.add(
        AgentStateLog(
            sip_login=login, at=now, action=action, reason=reason, source=source, data=data
        )
    )


def record_login(
    session: Session, login: str, queues: Sequence[str] | None, source: str, now: datetime
) -> None:
    op = _operator(session, login)
    skills = {s.queue for s in op.skills}
    if queues is not None:
        unknown = [q for q in queues if q not in skills]
        if unknown:
            raise RosterError(
                f"operator {login!r} has no skill for {', '.join(unknown)}; "
                f"their queues: {', '.join(sorted(skills))}"
            )
        if not queues:
            raise RosterError("log in to at least one queue")
    row = _upsert(session, login, now)
    if not row.logged_in:
        row.since = now
        row.paused, row.pause_reason = False, None
    row.logged_in = True
    row.queues = list(queues) if queues is not None else None
    _log(session, login, "login", source, now, queues=list(queues) if queues else None)


def record_logout(session: Session, login: str, source: str, now: datetime) -> None:
    _operator(session, login)
    row = _upsert(session, login, now)
    row.logged_in, row.paused, row.pause_reason, row.since = False, False, None, now
    _log(session, login, "logout", source, now)


def record_pause(
    session: Session, login: str, paused: bool, reason: str | None, source: str, now: datetime
) -> bool:
    """Returns False when nothing changed (already in that state with that reason)."""
    _operator(session, login)
    clean = " ".join((reason or "").split())[:MAX_REASON] or None
    if paused and clean is None:
        raise RosterError("a pause needs a reason (lunch, training, after-call work ...)")
    row = _upsert(session, login, now)
    if not row.logged_in:
        raise RosterError(f"operator {login!r} is logged out; log in first")
    if row.paused == paused and (not paused or row.pause_reason == clean):
        return False
    row.paused, row.pause_reason, row.since = paused, clean if paused else None, now
    _log(session, login, "pause" if paused else "unpause", source, now, reason=clean)
    return True


def record_queues(
    session: Session, login: str, spec: str, source: str, now: datetime
) -> list[Skill]:
    """A supervisor's live change of an operator's queues and penalties, kept in the roster
    (the operator's skills: a reload or a re-render keeps it) and applied to every queue they
    are in. `spec` is the roster's own `heating,coordinator:5`, validated as `hotline operators
    add` validates it: a known queue (the centre's, or the operator's tenant's own), a penalty
    in 0..PENALTY_MAX, at least one queue. Returns the skills stored."""
    op = _operator(session, login)
    tenant = op.tenant.slug if op.tenant is not None else None
    clean, _tenant_id = skills_for_tenant(session, spec, tenant)
    before = {s.queue: s.penalty for s in op.skills}
    op.skills.clear()
    session.flush()
    op.skills.extend(OperatorSkill(queue=s.queue, penalty=s.penalty) for s in clean)
    row = _row(session, login)
    if row is not None and row.queues is not None:
        # A log-in to some of their queues: keep it to those still theirs (at least one).
        kept = [q for q in row.queues if any(s.queue == q for s in clean)]
        row.queues = kept or None
        row.updated_at = now
    _log(
        session,
        login,
        "queues",
        source,
        now,
        before=before,
        after={s.queue: s.penalty for s in clean},
    )
    return clean


# --- the service ------------------------------------------------------------------------


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
        desired, managed = await asyncio.to_thread(self._read_desired)
        if only is not None:
            desired = [a for a in desired if a.login == only]
            managed = {interface_of(only)}
        actual = await self.members(ami)
        if only is not None:
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
