"""The desired agent state in the database (AgentState rows and their log): who should be
logged in to which queues, paused or not, as the CLI, the dashboard and the router change it."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.agent_membership import MAX_REASON, DesiredAgent, interface_of
from call_router.agent_models import AgentState, AgentStateLog
from call_router.models import Operator, OperatorSkill
from call_router.operators import RosterError, Skill, list_operators, skills_for_tenant


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
