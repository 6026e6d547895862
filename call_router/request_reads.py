# Reading service requests: the filtered list and counts the pages, API and Open311 serve,
# and what the phone menu reads for a caller.

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from call_router import request_lifecycle as life
from call_router.request_lifecycle import Category
from call_router.request_models import ServiceRequest
from call_router.service_requests import clean_caller_number, id_of


@dataclass(frozen=True)
class RequestFilter:
    states: Sequence[str] = ()
    category: str | None = None
    crew_id: int | None = None
    caller_number: str | None = None
    overdue_at: datetime | None = None  # only requests open and past their deadline then
    since: datetime | None = None
    until: datetime | None = None
    numbers: Sequence[str] = ()
    categories: Sequence[str] = ()  # any of these (Open311's comma-separated service_code)


def list_requests(
    session: Session, where: RequestFilter, *, limit: int = 100, offset: int = 0
) -> list[ServiceRequest]:
    stmt = select(ServiceRequest)
    if where.states:
        stmt = stmt.where(ServiceRequest.state.in_(list(where.states)))
    if where.category:
        stmt = stmt.where(ServiceRequest.category == where.category)
    if where.crew_id is not None:
        stmt = stmt.where(ServiceRequest.crew_id == where.crew_id)
    if where.caller_number:
        stmt = stmt.where(ServiceRequest.caller_number == clean_caller_number(where.caller_number))
    if where.overdue_at is not None:
        stmt = stmt.where(
            ServiceRequest.state.in_(sorted(life.OPEN_STATES)),
            ServiceRequest.sla_deadline < where.overdue_at,
        )
    if where.since is not None:
        stmt = stmt.where(ServiceRequest.created_at >= where.since)
    if where.until is not None:
        stmt = stmt.where(ServiceRequest.created_at <= where.until)
    if where.categories:
        stmt = stmt.where(ServiceRequest.category.in_(list(where.categories)))
    if where.numbers:
        ids = [row_id for row_id in map(id_of, where.numbers) if row_id is not None]
        stmt = stmt.where(ServiceRequest.id.in_(ids))
    stmt = stmt.order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
    return list(session.scalars(stmt.limit(limit).offset(offset)).unique())


def count_requests(session: Session, states: Sequence[str] = ()) -> int:
    stmt = select(func.count()).select_from(ServiceRequest)
    if states:
        stmt = stmt.where(ServiceRequest.state.in_(list(states)))
    return int(session.scalar(stmt) or 0)


@dataclass(frozen=True)
class Escalated:
    """Open requests past their deadline, by who must act on them now
    (request_lifecycle.escalation): the dispatchers first, later the supervisors."""

    dispatcher: int = 0
    supervisor: int = 0


def escalated_requests(session: Session, now: datetime) -> Escalated:
    """What the wallboard shows of the requests nobody finished in time (behind the wall)."""
    overdue = session.execute(
        select(ServiceRequest.state, ServiceRequest.created_at, ServiceRequest.sla_deadline).where(
            ServiceRequest.state.in_(sorted(life.OPEN_STATES)),
            ServiceRequest.sla_deadline < now,
        )
    )
    levels = [life.escalation(state, made, deadline, now) for state, made, deadline in overdue]
    return Escalated(
        dispatcher=levels.count(life.DISPATCHER_LEVEL),
        supervisor=levels.count(life.SUPERVISOR_LEVEL),
    )


# --- what the phone menu reads ---------------------------------------------------------------


def open_requests_for_caller(session: Session, caller_number: str) -> list[ServiceRequest]:
    """The caller's open requests, newest first: what the menu reads before anything else."""
    number = clean_caller_number(caller_number)
    if number is None:
        return []
    return list_requests(
        session, RequestFilter(states=sorted(life.OPEN_STATES), caller_number=number), limit=5
    )


def open_requests_with_callers(*columns: Any) -> Select[Any]:
    """These columns of every open request that has a caller's number, newest first: what the
    phone menu knows of its callers (their open requests, where they live)."""
    return (
        select(*columns)
        .where(
            ServiceRequest.state.in_(sorted(life.OPEN_STATES)),
            ServiceRequest.caller_number.is_not(None),
        )
        .order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
    )


def spoken_status(request: ServiceRequest, categories: dict[str, Category]) -> str:
    """One sentence for the caller: "Your request 1234 about heating: a crew is on the way."."""
    category = categories.get(request.category)
    about = category.name if category else request.category
    state = life.STATUS_NOTES.get(request.state, request.state)
    return f"Your request {request.number} about {about.lower()}: {state[0].lower()}{state[1:]}"
