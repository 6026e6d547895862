# Giving service requests to crews: one at a time (checked against the crew's categories
# and districts, optimistic lock) or many at once (each whole or refused with its reason).

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router import request_lifecycle as life
from call_router.models import utcnow
from call_router.request_crews import crew_serves, get_crew
from call_router.request_lifecycle import LifecycleError
from call_router.request_models import Crew, ServiceRequest
from call_router.service_requests import (
    MAX_NOTE,
    RequestError,
    add_event,
    check_version,
    clean_text,
    flush,
    get_request,
)


def assign(
    session: Session,
    number: str,
    crew_id: int,
    *,
    actor: str,
    note: str | None = None,
    expected_version: int | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> ServiceRequest:
    """Give a request to a crew (or hand it to another); `force` skips the categories and
    districts check."""
    now = now or utcnow()
    request = get_request(session, number)
    check_version(request, expected_version)
    crew = session.scalar(select(Crew).where(Crew.id == crew_id))
    if crew is None or crew.tenant_id != request.tenant_id or not crew.active:
        raise RequestError(f"no crew {crew_id}", "not_found")
    if not force and not crew_serves(crew, request.category, request.district):
        raise RequestError(
            f"crew {crew.name!r} does not take {request.category} in"
            f" {request.district or 'this district'} (force to assign anyway)",
            "crew_mismatch",
        )
    previous = request.state
    if previous not in (life.ASSIGNED, life.ON_THE_WAY):
        life.check_move(previous, life.ASSIGNED)
    request.state = life.ASSIGNED
    request.crew = crew
    request.updated_at = now
    clean_note = clean_text(note, "note", MAX_NOTE)
    add_event(
        request,
        "assigned",
        actor,
        now,
        from_state=previous,
        to_state=life.ASSIGNED,
        note=f"crew {crew.name}" + (f": {clean_note}" if clean_note else ""),
    )
    flush(session)
    return request


# At most this many requests in one bulk assignment.
MAX_BULK = 200


@dataclass(frozen=True)
class Refused:
    number: str
    code: str
    message: str


@dataclass(frozen=True)
class BulkAssigned:
    assigned: list[ServiceRequest]
    # Each with the reason: changed meanwhile (conflict), not found, the crew does not take it.
    refused: list[Refused]


def assign_many(
    session: Session,
    picks: Sequence[tuple[str, int | None]],
    crew_id: int,
    *,
    actor: str,
    note: str | None = None,
    force: bool = False,
    now: datetime | None = None,
) -> BulkAssigned:
    """Give several requests (number, the version the dispatcher saw) to one crew. Each is
    assigned whole or not at all (its own savepoint, `assign`'s rules and optimistic lock):
    one changed meanwhile is refused with the reason and the others are still assigned."""
    if len(picks) > MAX_BULK:
        raise RequestError(f"at most {MAX_BULK} requests at once", "invalid")
    get_crew(session, crew_id)  # an unknown crew refuses the whole action
    now = now or utcnow()
    assigned: list[ServiceRequest] = []
    refused: list[Refused] = []
    seen: set[str] = set()
    for number, version in picks:
        if number in seen:
            continue
        seen.add(number)
        try:
            with session.begin_nested():
                request = assign(
                    session,
                    number,
                    crew_id,
                    actor=actor,
                    note=note,
                    expected_version=version,
                    force=force,
                    now=now,
                )
        except LifecycleError as exc:
            refused.append(Refused(number, exc.code, str(exc)))
            continue
        assigned.append(request)
    return BulkAssigned(assigned, refused)
