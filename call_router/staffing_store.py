"""Reads what the staffing forecast needs (call_router/staffing.py) from the call log and the
agent history.

Every read of calls is an ORM statement, so the tenant wall (call_router/tenant_wall.py) applies: a
tenant's forecast is built from that tenant's calls only. The agent history has no tenant of its
own; a session scoped to a tenant counts only that tenant's operators (the centre's scope: the
centre's staff).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from call_router import service_figures, tenant_wall
from call_router.agent_models import AgentStateLog
from call_router.erlang import Target
from call_router.models import DIRECTION_INBOUND, Call, Operator
from call_router.service_figures import PLAIN
from call_router.staffing import AgentEvent, CallSample, ForecastRow, Window, forecast


def inbound_queue_calls(
    session: Session, since: datetime, until: datetime, wrapup_seconds: float
) -> list[CallSample]:
    """Callers who joined a queue in [since, until): their arrival and, if answered, talk time
    plus the queue's wrap-up (the operator's time the call took). Callbacks placed by operators
    are not arrivals and are left out."""
    stmt = select(Call.queue_joined_at, Call.answered_at, Call.ended_at, Call.talk_seconds).where(
        Call.queue_joined_at >= since,
        Call.queue_joined_at < until,
        Call.direction == DIRECTION_INBOUND,
    )
    samples = []
    for joined, answered, ended, talk in session.execute(stmt):
        if joined is None:  # excluded by the WHERE; narrows the type
            continue
        handle: float | None = None
        if answered is not None:
            # Still talking (no end yet): no talk time counted so far.
            talked = service_figures.talk(PLAIN, talk, answered, ended)
            handle = (max(0.0, float(talked)) if talked is not None else 0.0) + wrapup_seconds
        samples.append(CallSample(joined, handle))
    return samples


def _operator_filter(session: Session) -> Any | None:
    scope = tenant_wall.scope_of(session)
    if scope.everything:
        return None
    if scope.nothing:
        return AgentStateLog.sip_login.in_(select(Operator.sip_login).where(Operator.id.is_(None)))
    if scope.tenant is not None:
        owned = select(Operator.sip_login).where(Operator.tenant_id == scope.tenant)
    else:
        owned = select(Operator.sip_login).where(Operator.tenant_id.is_(None))
    return AgentStateLog.sip_login.in_(owned)


def agent_events(session: Session, since: datetime, until: datetime) -> Sequence[AgentEvent]:
    """Every log-in/out and pause in [since, until), plus each operator's last event before
    `since` (the state they were in when the window opened)."""
    wall = _operator_filter(session)
    last_before = (
        select(func.max(AgentStateLog.id))
        .where(AgentStateLog.at < since)
        .group_by(AgentStateLog.sip_login)
    )
    inside = and_(AgentStateLog.at >= since, AgentStateLog.at < until)
    stmt = select(
        AgentStateLog.sip_login, AgentStateLog.at, AgentStateLog.action, AgentStateLog.reason
    ).where(inside | AgentStateLog.id.in_(last_before))
    if wall is not None:
        stmt = stmt.where(wall)
    stmt = stmt.order_by(AgentStateLog.at, AgentStateLog.id)
    return [AgentEvent(*row) for row in session.execute(stmt)]


def week_forecast(
    session: Session,
    now: datetime,
    weeks: int,
    zone: tzinfo,
    target: Target,
    wrapup_seconds: float,
) -> tuple[Window, list[ForecastRow]]:
    """The coming week's plan from the last `weeks` weeks of this session's calls."""
    window = Window.ending(now, weeks, zone)
    calls = inbound_queue_calls(session, window.start, window.end, wrapup_seconds)
    events = agent_events(session, window.start, window.end)
    return window, forecast(window, calls, events, target)
