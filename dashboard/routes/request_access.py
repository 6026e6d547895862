"""Who may do what to service requests over HTTP, and how a refused action answers.

Shared by `/api/requests` (dashboard/routes/api_requests.py, api_request_moves.py) and the
request pages (request_pages.py, request_reports.py). The roles are call_router/accounts.py's;
the tenant wall applies to every query, so another tenant's request is a 404.

    read requests and crews     supervisor, operator, dispatcher, crew
    create, link a call         supervisor, operator, dispatcher
    assign to a crew            supervisor, dispatcher
    change state                supervisor, dispatcher: any allowed move; operator: close,
                                reopen, duplicate, not ours; crew: the work's own moves, on
                                its own crew's jobs only (not another crew's, nor a request
                                not yet assigned)
    add a crew                  supervisor, dispatcher
    the screen-pop's prefill    supervisor, operator: it shows a call's caller, and who opens
                                calls is the `staff` rule (dashboard/auth.py)

Errors carry a stable `code` (call_router/service_requests.py RequestError): 404 not found,
409 for a refused move or a stale `version` (someone changed it meanwhile), 422 bad input.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException
from sqlalchemy.orm import Session

from call_router import attachment_checks as checks
from call_router import request_attachments as files
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.accounts import CREW, DISPATCHER, OPERATOR, SUPERVISOR
from call_router.request_lifecycle import LifecycleError
from call_router.request_models import ServiceRequest
from dashboard.auth import STAFF
from dashboard.deps import Actor, ActorDep

CREATORS = frozenset({SUPERVISOR, OPERATOR, DISPATCHER})
DISPATCHERS = frozenset({SUPERVISOR, DISPATCHER})
CALL_READERS = STAFF.roles
# The moves each role may make (beyond that, the one transition table decides).
ROLE_STATES: dict[str, frozenset[str]] = {
    SUPERVISOR: frozenset(life.STATES),
    DISPATCHER: frozenset(life.STATES),
    OPERATOR: frozenset({life.CLOSED, life.NEW, life.DUPLICATE, life.NOT_OURS}),
    CREW: frozenset(
        {life.ON_THE_WAY, life.IN_PROGRESS, life.WAITING_FOR_PARTS, life.DONE, life.CANNOT_FIX}
    ),
}
STATUS_CODES = {
    "not_found": 404,
    "conflict": 409,
    "transition": 409,
    "crew_mismatch": 409,
    "exists": 409,
}


def need(actor: ActorDep, roles: frozenset[str], what: str) -> None:
    if actor.principal.role not in roles:
        raise HTTPException(403, detail=f"your role may not {what}")


def own_crews_job(session: Session, actor: Actor, request: ServiceRequest) -> bool:
    """`request` is assigned to the crew the actor's account works as."""
    own_crew = files.crew_of_user(session, actor.principal.user_id)
    return checks.may_read(CREW, own_crew, request.crew_id)


def allowed_moves(session: Session, actor: Actor, request: ServiceRequest) -> frozenset[str]:
    """The states the actor's role may move `request` to (the transition table decides the
    rest). A crew reports its own work's progress: on another crew's job, or one not assigned
    yet, it may make no move."""
    role = actor.principal.role
    if role == CREW and not own_crews_job(session, actor, request):
        return frozenset()
    return ROLE_STATES.get(role, frozenset())


def check_move(session: Session, actor: Actor, request: ServiceRequest, target: str) -> None:
    """403 unless the actor may move `request` to `target` (`allowed_moves`)."""
    if target not in ROLE_STATES.get(actor.principal.role, frozenset()):
        raise HTTPException(403, detail=f"your role may not set {target[:32]}")
    if target not in allowed_moves(session, actor, request):
        raise HTTPException(403, detail="a crew moves only its own crew's jobs")


@contextmanager
def refusals_as_http() -> Iterator[None]:
    """A refused request action (LifecycleError) answers with its status and stable code."""
    try:
        yield
    except LifecycleError as exc:
        raise HTTPException(
            STATUS_CODES.get(exc.code, 422), detail={"code": exc.code, "message": str(exc)}
        ) from None


def known_number(number: str) -> str:
    """`number` if it is a request number's shape (else 404: nothing to look up)."""
    if store.id_of(number) is None:
        raise HTTPException(404, detail={"code": "not_found", "message": f"no request {number}"})
    return number
