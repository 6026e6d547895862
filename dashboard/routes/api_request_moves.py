"""The moves of a service request over `/api/requests`: a new state, a crew (one request or
several at once), a call that mentions it. Each answers with the request as it now is; a
refused move answers with its stable code (request_access.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from call_router import request_assignment, request_views
from call_router import service_requests as store
from call_router.request_models import ServiceRequest
from dashboard.deps import ActorDep, SessionDep
from dashboard.routes.request_access import (
    CREATORS,
    DISPATCHERS,
    check_move,
    known_number,
    need,
    refusals_as_http,
)
from dashboard.routes.request_schemas import (
    AssignIn,
    BulkAssignIn,
    BulkAssignOut,
    LinkIn,
    RequestDetailOut,
    StatusIn,
)

router = APIRouter(tags=["requests"])


def _moved(
    move: Callable[..., ServiceRequest],
    session: SessionDep,
    number: str,
    target: object,
    actor: ActorDep,
    body: StatusIn | AssignIn,
    **extra: object,
) -> dict[str, Any]:
    """`move` (a state change or an assignment: the same note and optimistic lock) applied to
    request `number`; the request as it now is, in full (with its calls and history)."""
    with refusals_as_http():
        request = move(
            session,
            known_number(number),
            target,
            actor=actor.by,
            note=body.note,
            expected_version=body.version,
            **extra,
        )
    return request_views.request_dict(request, detail=True)


@router.post("/api/requests/assign", response_model=BulkAssignOut)
def assign_many(body: BulkAssignIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Give several requests to one crew in one action. Each is assigned whole or not at all:
    one changed since its `version` (or refused for another reason) is listed in `refused`
    with the reason, the others are assigned. An unknown crew refuses the whole action (404)."""
    need(actor, DISPATCHERS, "assign requests")
    with refusals_as_http():
        result = request_assignment.assign_many(
            session,
            [(pick.number, pick.version) for pick in body.requests],
            body.crew_id,
            actor=actor.by,
            note=body.note,
            force=body.force,
        )
    return request_views.bulk_dict(result)


@router.post("/api/requests/{number}/status", response_model=RequestDetailOut)
def change_status(
    number: str, body: StatusIn, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Move a request to another state (allowed moves: request_lifecycle.TRANSITIONS, and by
    role: request_access.py `allowed_moves`)."""
    with refusals_as_http():
        found = store.get_request(session, known_number(number))
    check_move(session, actor, found, body.state)
    return _moved(
        store.change_state, session, number, body.state, actor, body, duplicate_of=body.duplicate_of
    )


@router.post("/api/requests/{number}/assign", response_model=RequestDetailOut)
def assign(number: str, body: AssignIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Give a request to a crew (or hand it to another)."""
    need(actor, DISPATCHERS, "assign requests")
    return _moved(
        request_assignment.assign, session, number, body.crew_id, actor, body, force=body.force
    )


@router.post("/api/requests/{number}/calls", response_model=RequestDetailOut)
def link_call(number: str, body: LinkIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Note that a call mentions the request (the resident called about it again)."""
    need(actor, CREATORS, "link calls")
    with refusals_as_http():
        request = store.link_call(session, known_number(number), body.call_id, actor=actor.by)
    return request_views.request_dict(request, detail=True)
