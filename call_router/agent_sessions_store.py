"""Reads the agent-session report's inputs (call_router/agent_sessions.py): the agent state log,
the operators' answered calls and their missed rings.

ORM statements only, so the tenant wall applies (call_router/tenant_wall.py): a tenant's supervisor
sees their own operators' log (staffing_store.agent_events) and their own calls. The call log
names an operator by the roster name for queue calls (AgentConnect's MemberName) and by the SIP
login for click-to-call; both become the login here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from call_router import staffing_store
from call_router.agent_sessions import AgentFigures, CallLeg, agent_figures, day_bounds
from call_router.call_event_kinds import EVENT_RING_NO_ANSWER
from call_router.models import DIRECTION_CALLBACK, DIRECTION_INBOUND, Call, CallEvent, Operator

# A call longer than this is not looked for before the range (it would have ended inside).
LONGEST_CALL = timedelta(hours=6)


def _logins(session: Session) -> tuple[dict[str, str], dict[str, str]]:
    """(login -> roster name, roster name -> login) of the operators the session may see."""
    rows = list(session.execute(select(Operator.sip_login, Operator.name)))
    return {login: name for login, name in rows}, {name: login for login, name in rows}


def call_legs(
    session: Session, since: datetime, until: datetime, *, now: datetime, by_name: dict[str, str]
) -> list[CallLeg]:
    """Answered inbound and callback calls of any operator overlapping [since, until)."""
    stmt = select(
        Call.operator, Call.answered_at, Call.ended_at, Call.talk_seconds, Call.direction
    ).where(
        Call.operator.is_not(None),
        Call.answered_at.is_not(None),
        Call.answered_at < until,
        Call.answered_at >= since - LONGEST_CALL,
        or_(Call.ended_at.is_(None), Call.ended_at > since),
        Call.direction.in_((DIRECTION_INBOUND, DIRECTION_CALLBACK)),
    )
    legs = []
    for operator, answered, ended, talk, direction in session.execute(stmt):
        if operator is None or answered is None:  # excluded by the WHERE; narrows the type
            continue
        end: datetime
        if talk is not None:
            end = answered + timedelta(seconds=int(talk))
        else:
            end = ended if ended is not None else max(answered, now)
        login = by_name.get(operator, operator)
        legs.append(CallLeg(login, answered, end, inbound=direction == DIRECTION_INBOUND))
    return legs


def missed_rings(
    session: Session, since: datetime, until: datetime, by_name: dict[str, str]
) -> list[tuple[str, datetime]]:
    """(login, when) of every ring an operator let ring out in [since, until) (the call's
    timeline event `ring_no_answer`, behind the call's wall)."""
    operator = CallEvent.data["operator"].as_string()
    stmt = (
        select(operator, CallEvent.at)
        .join(Call, Call.id == CallEvent.call_id)
        .where(
            and_(
                CallEvent.kind == EVENT_RING_NO_ANSWER,
                CallEvent.at >= since,
                CallEvent.at < until,
            )
        )
    )
    return [(by_name.get(name, name), at) for name, at in session.execute(stmt) if name]


def agent_report(
    session: Session,
    first: date,
    last: date,
    zone: Any,
    *,
    wrapup_seconds: float,
    now: datetime,
) -> tuple[list[AgentFigures], list[AgentFigures]]:
    """The local days first..last: (per operator and day, per operator over the period)."""
    days = day_bounds(first, last, zone)
    since, until = days[0][1], days[-1][2]
    names, by_name = _logins(session)
    events = staffing_store.agent_events(session, since, until)
    legs = call_legs(session, since, until, now=now, by_name=by_name)
    missed = missed_rings(session, since, until, by_name)
    return agent_figures(
        events,
        legs,
        missed,
        first=first,
        last=last,
        zone=zone,
        wrapup_seconds=wrapup_seconds,
        names=names,
        now=now,
    )
