"""Rows the wallboard and call pages read: calls in progress, roster, dispositions, overdue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from call_router.callback_policy import overdue_condition
from call_router.models import CALLBACK_OPEN, Call, Callback, Operator

# A call the router lost track of (crash before hang-up) must not stay "in progress" forever.
STALE_CALL = timedelta(hours=4)


def open_calls(session: Session, now: datetime) -> list[Call]:
    """Calls not ended yet (not older than STALE_CALL): the wallboard's calls in progress.

    With queue_totals for today's figures, the wallboard reads a handful of rows instead of
    the whole day's (the partial index of migration 0008 holds only open calls).
    """
    stmt = select(Call).where(Call.ended_at.is_(None), Call.started_at >= now - STALE_CALL)
    return list(session.scalars(stmt.order_by(Call.started_at.asc(), Call.id.asc())))


@dataclass(frozen=True)
class RosterEntry:
    name: str
    login: str | None = None
    # From agent_states when that table exists: "logged_out" / "paused" / "available".
    state: str | None = None
    reason: str | None = None
    since: datetime | None = None


def roster(session: Session) -> list[RosterEntry]:
    """Enabled operators with their desired state, for the wallboard's operator panel."""
    try:
        from call_router.agent_models import AgentState
    except ImportError:  # the agent-state tables arrive with another change
        rows = session.execute(
            select(Operator.name, Operator.sip_login)
            .where(Operator.enabled.is_(True))
            .order_by(Operator.name)
        )
        return [RosterEntry(name, login) for name, login in rows]
    stmt = (
        select(Operator.name, Operator.sip_login, AgentState)
        .outerjoin(AgentState, AgentState.sip_login == Operator.sip_login)
        .where(Operator.enabled.is_(True))
        .order_by(Operator.name)
    )
    entries = []
    for name, login, agent in session.execute(stmt):
        if agent is None:
            # No row: logged in to all skills (the roster's default).
            entries.append(RosterEntry(name, login, "available"))
            continue
        state = "logged_out" if not agent.logged_in else "paused" if agent.paused else "available"
        entries.append(RosterEntry(name, login, state, agent.pause_reason, agent.since))
    return entries


def disposition_of(session: Session, call_id: int) -> Any | None:
    """The operator's disposition of a call, if that table exists and has one."""
    try:
        from call_router.agent_models import CallDisposition
    except ImportError:
        return None
    stmt = select(CallDisposition).where(CallDisposition.call_id == call_id)
    return session.scalars(stmt).one_or_none()


def overdue_callbacks(session: Session, now: datetime) -> int | None:
    """Open callbacks past their promised time; None while the schema has no due time yet."""
    due = getattr(Callback, "due_at", None)
    if due is None:
        return None
    stmt = (
        select(func.count())
        .select_from(Callback)
        .where(Callback.status == CALLBACK_OPEN, overdue_condition(due, now))
    )
    return int(session.scalar(stmt) or 0)
