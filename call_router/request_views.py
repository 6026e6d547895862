# Service requests as data: one JSON shape for the CLI's --json and the API, and the
# operator's new-request form prefilled from a call.

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router import request_lifecycle as life
from call_router.models import Call, utcnow
from call_router.request_assignment import BulkAssigned
from call_router.request_lifecycle import Category
from call_router.request_models import Crew, ServiceRequest
from call_router.request_reads import open_requests_for_caller
from call_router.service_requests import RequestError, clean_caller_number


def crew_dict(crew: Crew) -> dict[str, object]:
    return {
        "id": crew.id,
        "name": crew.name,
        "categories": list(crew.categories),
        "districts": list(crew.districts),
        "phone": crew.phone,
        "active": crew.active,
    }


def request_dict(
    request: ServiceRequest, *, now: datetime | None = None, detail: bool = False
) -> dict[str, object]:
    info: dict[str, object] = {
        "number": request.number,
        "category": request.category,
        "state": request.state,
        "status": life.open311_status(request.state),
        "priority": life.PRIORITIES[request.priority],
        "street": request.street,
        "house": request.house,
        "flat": request.flat,
        "district": request.district,
        "lat": request.lat,
        "long": request.long,
        "description": request.description,
        "caller_number": request.caller_number,
        "caller_name": request.caller_name,
        "source": request.source,
        "crew": crew_dict(request.crew) if request.crew is not None else None,
        "reports": request.reports,
        "status_notes": request.status_notes,
        "created_at": request.created_at.isoformat(),
        "updated_at": request.updated_at.isoformat(),
        "sla_deadline": request.sla_deadline.isoformat(),
        "overdue": life.overdue(request.state, request.sla_deadline, now or utcnow()),
        "escalated_to": life.escalation(
            request.state, request.created_at, request.sla_deadline, now or utcnow()
        ),
        "closed_at": request.closed_at.isoformat() if request.closed_at else None,
        "version": request.version,
        "feedback_attempts": request.feedback_attempts,
        "feedback_score": request.feedback_score,
    }
    if detail:
        info["calls"] = [link.call_id for link in request.calls]
        info["history"] = [
            {
                "at": event.at.isoformat(),
                "action": event.action,
                "actor": event.actor,
                "from_state": event.from_state,
                "to_state": event.to_state,
                "note": event.note,
            }
            for event in request.events
        ]
    return info


def bulk_dict(result: BulkAssigned, *, now: datetime | None = None) -> dict[str, object]:
    """A bulk assignment's outcome: the requests assigned, and those refused with the reason."""
    now = now or utcnow()
    return {
        "assigned": [request_dict(r, now=now) for r in result.assigned],
        "refused": [asdict(r) for r in result.refused],
    }


# --- from a call: what the operator's form starts with ----------------------------------------


@dataclass(frozen=True)
class Suggestion:
    """A new request's form, prefilled from a call: the category its recognised intent
    suggests, the caller's last address, and their open requests (to attach instead)."""

    call_id: int
    caller_number: str | None
    caller_name: str | None
    category: str | None
    last_address: dict[str, str | None] | None
    open_requests: list[ServiceRequest]


def suggest_for_call(session: Session, call_id: int, categories: dict[str, Category]) -> Suggestion:
    call = session.scalar(select(Call).where(Call.id == call_id))  # behind the wall
    if call is None:
        raise RequestError(f"no call {call_id}", "not_found")
    number = clean_caller_number(call.caller_number)
    last = None
    if number is not None:
        last = session.scalar(
            select(ServiceRequest)
            .where(ServiceRequest.caller_number == number)
            .order_by(ServiceRequest.created_at.desc(), ServiceRequest.id.desc())
            .limit(1)
        )
    return Suggestion(
        call_id=call.id,
        caller_number=number,
        caller_name=call.caller_name,
        category=life.category_for_intent(categories, call.intent),
        last_address=(
            {
                "street": last.street,
                "house": last.house,
                "flat": last.flat,
                "district": last.district,
            }
            if last is not None
            else None
        ),
        open_requests=open_requests_for_caller(session, number) if number else [],
    )
