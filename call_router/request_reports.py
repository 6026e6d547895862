"""Reads the facts of the service-request report (call_router/request_figures.py) for the
requests created in a period. ORM statements only, so the tenant wall (call_router/tenant_wall.py)
applies: a tenant's reader gets its own requests' figures."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from call_router import request_lifecycle as life
from call_router.request_figures import RequestFacts
from call_router.request_models import RequestEvent, ServiceRequest

# A reopen: a finished request sent back to `new` (assigned -> new is an unassignment).
FINISHED_STATES = tuple(sorted(set(life.STATES) - life.OPEN_STATES))


def read_facts(session: Session, since: datetime, until: datetime) -> list[RequestFacts]:
    """One fact per request created in [since, until)."""
    first_assigned = (
        select(RequestEvent.request_id, func.min(RequestEvent.at).label("at"))
        .where(RequestEvent.action == "assigned")
        .group_by(RequestEvent.request_id)
        .subquery()
    )
    reopened = (
        select(RequestEvent.request_id)
        .where(
            RequestEvent.action == "status",
            RequestEvent.to_state == life.NEW,
            RequestEvent.from_state.in_(FINISHED_STATES),
        )
        .distinct()
        .subquery()
    )
    stmt = (
        select(ServiceRequest, first_assigned.c.at, reopened.c.request_id)
        .outerjoin(first_assigned, first_assigned.c.request_id == ServiceRequest.id)
        .outerjoin(reopened, reopened.c.request_id == ServiceRequest.id)
        .where(ServiceRequest.created_at >= since, ServiceRequest.created_at < until)
        .order_by(ServiceRequest.id)
    )
    return [
        RequestFacts(
            category=request.category,
            district=request.district,
            crew=request.crew.name if request.crew is not None else None,
            created_at=request.created_at,
            sla_deadline=request.sla_deadline,
            assigned_at=assigned_at,
            closed_at=request.closed_at,
            reopened=reopened_id is not None,
        )
        for request, assigned_at, reopened_id in session.execute(stmt).unique()
    ]
