"""`/api/requests` and `/api/crews`: service requests for operators, dispatchers and crews.

Who may do what (the roles are call_router/accounts.py's; the tenant wall applies to every
query, so another tenant's request is a 404):

    read requests and crews     supervisor, operator, dispatcher, crew
    create, link a call         supervisor, operator, dispatcher
    assign to a crew            supervisor, dispatcher
    change state                supervisor, dispatcher: any allowed move; operator: close,
                                reopen, duplicate, not ours; crew: the work's own moves
    add a crew                  supervisor, dispatcher

Errors carry a stable `code` (call_router/service_requests.py RequestError): 404 not found,
409 for a refused move or a stale `version` (someone changed it meanwhile), 422 bad input.
Text from residents is returned as data (JSON) and defused in the CSV export.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from call_router import request_assignment, request_crews, request_reads, request_views
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.accounts import CREW, DISPATCHER, OPERATOR, SUPERVISOR
from call_router.models import Call, utcnow
from call_router.request_lifecycle import LifecycleError
from call_router.request_reads import RequestFilter
from dashboard import csv_export
from dashboard.deps import ActorDep, DatabaseDep, SessionDep
from dashboard.routes.schemas import MAX_ROW_ID

router = APIRouter(tags=["requests"])

NUMBER = r"^[0-9]{4,12}$"
CREATORS = frozenset({SUPERVISOR, OPERATOR, DISPATCHER})
DISPATCHERS = frozenset({SUPERVISOR, DISPATCHER})
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
CSV_COLUMNS = (
    "number",
    "created_at",
    "category",
    "state",
    "priority",
    "street",
    "house",
    "flat",
    "district",
    "description",
    "caller_number",
    "caller_name",
    "crew",
    "reports",
    "sla_deadline",
    "overdue",
    "closed_at",
    "escalated_to",
)


class CrewOut(BaseModel):
    id: int
    name: str
    categories: list[str]
    districts: list[str]
    phone: str | None
    active: bool


class HistoryOut(BaseModel):
    at: str
    action: str
    actor: str
    from_state: str | None
    to_state: str | None
    note: str | None


class RequestOut(BaseModel):
    number: str
    category: str
    state: str
    status: str
    priority: str
    street: str
    house: str
    flat: str | None
    district: str | None
    lat: float | None
    long: float | None
    description: str
    caller_number: str | None
    caller_name: str | None
    source: str
    crew: CrewOut | None
    reports: int
    status_notes: str | None
    created_at: str
    updated_at: str
    sla_deadline: str
    overdue: bool
    # An overdue request goes to the dispatchers, later to the supervisors (null: not overdue).
    escalated_to: str | None
    closed_at: str | None
    version: int
    # The "is it fixed?" call: tries so far, the resident's answer (1 solved, 2 not solved).
    feedback_attempts: int = 0
    feedback_score: int | None = None


class RequestDetailOut(RequestOut):
    calls: list[int]
    history: list[HistoryOut]


class CreatedOut(RequestOut):
    # True: an open request for the same address and category took this report.
    attached: bool


class RequestIn(BaseModel):
    category: str = Field(max_length=32)
    street: str = Field(min_length=1, max_length=store.MAX_STREET)
    house: str = Field(min_length=1, max_length=store.MAX_HOUSE)
    flat: str | None = Field(default=None, max_length=store.MAX_FLAT)
    district: str | None = Field(default=None, max_length=store.MAX_DISTRICT)
    lat: float | None = Field(default=None, ge=-90, le=90)
    long: float | None = Field(default=None, ge=-180, le=180)
    description: str = Field(default="", max_length=store.MAX_DESCRIPTION)
    caller_number: str | None = Field(default=None, max_length=64)
    caller_name: str | None = Field(default=None, max_length=store.MAX_NAME)
    priority: Literal["normal", "high", "emergency"] = "normal"
    # The call it came from (its tenant becomes the request's).
    call_id: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


class StatusIn(BaseModel):
    state: Literal[
        "new",
        "assigned",
        "on_the_way",
        "in_progress",
        "waiting_for_parts",
        "done",
        "cannot_fix",
        "duplicate",
        "not_our_responsibility",
        "closed",
    ]
    note: str | None = Field(default=None, max_length=store.MAX_NOTE)
    # The version you read: a change made meanwhile by someone else is then a 409.
    version: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)
    duplicate_of: str | None = Field(default=None, pattern=NUMBER)


class AssignIn(BaseModel):
    crew_id: int = Field(ge=1, le=MAX_ROW_ID)
    note: str | None = Field(default=None, max_length=store.MAX_NOTE)
    version: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)
    force: bool = False


class LinkIn(BaseModel):
    call_id: int = Field(ge=1, le=MAX_ROW_ID)


class CrewIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    categories: list[Annotated[str, Field(max_length=32)]] = Field(default=[], max_length=50)
    districts: list[Annotated[str, Field(max_length=64)]] = Field(default=[], max_length=200)
    phone: str | None = Field(default=None, max_length=32)


def _refused(exc: LifecycleError) -> HTTPException:
    return HTTPException(
        STATUS_CODES.get(exc.code, 422), detail={"code": exc.code, "message": str(exc)}
    )


def _need(actor: ActorDep, roles: frozenset[str], what: str) -> None:
    if actor.principal.role not in roles:
        raise HTTPException(403, detail=f"your role may not {what}")


def _check_number(number: str) -> str:
    if store.id_of(number) is None:
        raise HTTPException(404, detail={"code": "not_found", "message": f"no request {number}"})
    return number


# Query filters: a known state, a category code's shape (call_router/service_categories.yaml),
# a caller number in any spelling but no control characters (PostgreSQL refuses NUL in text).
State = Literal[life.STATES]  # type: ignore[valid-type]
CATEGORY_CODE = r"^[a-z0-9_-]{1,32}$"
NO_CONTROL_CHARACTERS = r"^[^\x00-\x1f\x7f]*$"


@router.get("/api/requests", response_model=list[RequestOut])
def list_requests(
    session: SessionDep,
    state: Annotated[list[State] | None, Query(max_length=len(life.STATES))] = None,
    category: Annotated[str | None, Query(pattern=CATEGORY_CODE)] = None,
    crew: Annotated[int | None, Query(ge=1, le=MAX_ROW_ID)] = None,
    overdue: bool = False,
    caller: Annotated[str | None, Query(max_length=64, pattern=NO_CONTROL_CHARACTERS)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[dict[str, Any]]:
    """Requests, newest first, with filters (several `state=` allowed)."""
    now = utcnow()
    where = RequestFilter(
        states=state or (),
        category=category,
        crew_id=crew,
        caller_number=caller,
        overdue_at=now if overdue else None,
    )
    rows = request_reads.list_requests(session, where, limit=limit, offset=offset)
    return [request_views.request_dict(r, now=now) for r in rows]


def _csv_rows(db: DatabaseDep, where: RequestFilter) -> Iterator[str]:
    yield from csv_export.encode_rows([CSV_COLUMNS])
    now = utcnow()
    with db.session() as session:  # behind the same wall: the context's scope applies
        offset = 0
        while True:
            batch = request_reads.list_requests(session, where, limit=500, offset=offset)
            if not batch:
                return
            rows = []
            for request in batch:
                info = request_views.request_dict(request, now=now)
                info["crew"] = request.crew.name if request.crew else None
                rows.append(
                    [
                        csv_export.safe_cell(info[c])
                        if isinstance(info[c], str) or info[c] is None
                        else str(info[c])
                        for c in CSV_COLUMNS
                    ]
                )
            yield from csv_export.encode_rows(rows)
            offset += len(batch)


@router.get("/api/requests/export.csv", response_class=StreamingResponse)
def export_requests(
    db: DatabaseDep,
    state: Annotated[list[State] | None, Query(max_length=len(life.STATES))] = None,
    category: Annotated[str | None, Query(pattern=CATEGORY_CODE)] = None,
    overdue: bool = False,
) -> StreamingResponse:
    """The requests as CSV (text cells that a spreadsheet would run as formulas are defused)."""
    where = RequestFilter(
        states=state or (), category=category, overdue_at=utcnow() if overdue else None
    )
    stamp = datetime.now().strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        _csv_rows(db, where),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="requests-{stamp}.csv"'},
    )


@router.post("/api/requests", response_model=CreatedOut, status_code=201)
def create_request(
    body: RequestIn, session: SessionDep, actor: ActorDep, response: Response
) -> dict[str, Any]:
    """A new request; if one is open for the same address and category, this report attaches
    to it (200, `attached: true`: tell the resident its number)."""
    _need(actor, CREATORS, "create requests")
    tenant_id = actor.principal.tenant_id
    if body.call_id is not None:
        call = session.get(Call, body.call_id)  # behind the wall
        if call is None:
            raise HTTPException(404, detail={"code": "not_found", "message": "no such call"})
        tenant_id = call.tenant_id
    new = store.NewRequest(
        **body.model_dump(exclude={"call_id"}),
        source="phone" if body.call_id is not None else "api",
    )
    try:
        created = store.create_request(
            session,
            new,
            categories=life.load_categories(),
            actor=actor.by,
            tenant_id=tenant_id,
            call_id=body.call_id,
        )
    except LifecycleError as exc:
        raise _refused(exc) from None
    if created.attached:
        response.status_code = 200
    return {**request_views.request_dict(created.request), "attached": created.attached}


class SuggestionOut(BaseModel):
    call_id: int
    caller_number: str | None
    caller_name: str | None
    # From the call's recognised intent (service_categories.yaml `intents`); null: none.
    category: str | None
    last_address: dict[str, str | None] | None
    open_requests: list[RequestOut]


@router.get("/api/requests/suggest", response_model=SuggestionOut)
def suggest(
    session: SessionDep, call_id: Annotated[int, Query(ge=1, le=MAX_ROW_ID)]
) -> dict[str, Any]:
    """The operator's new-request form prefilled from a call (screen-pop): the category from
    the recognised intent, the caller's last address, and their open requests to attach to."""
    try:
        found = request_views.suggest_for_call(session, call_id, life.load_categories())
    except LifecycleError as exc:
        raise _refused(exc) from None
    return {
        "call_id": found.call_id,
        "caller_number": found.caller_number,
        "caller_name": found.caller_name,
        "category": found.category,
        "last_address": found.last_address,
        "open_requests": [request_views.request_dict(r) for r in found.open_requests],
    }


@router.get("/api/requests/{number}", response_model=RequestDetailOut)
def get_request(number: str, session: SessionDep) -> dict[str, Any]:
    """One request with its calls and full history."""
    try:
        request = store.get_request(session, _check_number(number))
    except LifecycleError as exc:
        raise _refused(exc) from None
    return request_views.request_dict(request, detail=True)


@router.post("/api/requests/{number}/status", response_model=RequestDetailOut)
def change_status(
    number: str, body: StatusIn, session: SessionDep, actor: ActorDep
) -> dict[str, Any]:
    """Move a request to another state (allowed moves: request_lifecycle.TRANSITIONS)."""
    if body.state not in ROLE_STATES.get(actor.principal.role, frozenset()):
        raise HTTPException(403, detail=f"your role may not set {body.state}")
    try:
        request = store.change_state(
            session,
            _check_number(number),
            body.state,
            actor=actor.by,
            note=body.note,
            expected_version=body.version,
            duplicate_of=body.duplicate_of,
        )
    except LifecycleError as exc:
        raise _refused(exc) from None
    return request_views.request_dict(request, detail=True)


@router.post("/api/requests/{number}/assign", response_model=RequestDetailOut)
def assign(number: str, body: AssignIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Give a request to a crew (or hand it to another)."""
    _need(actor, DISPATCHERS, "assign requests")
    try:
        request = request_assignment.assign(
            session,
            _check_number(number),
            body.crew_id,
            actor=actor.by,
            note=body.note,
            expected_version=body.version,
            force=body.force,
        )
    except LifecycleError as exc:
        raise _refused(exc) from None
    return request_views.request_dict(request, detail=True)


class PickIn(BaseModel):
    number: str = Field(pattern=NUMBER)
    # The version you read: if someone changed the request meanwhile, it is not assigned.
    version: int | None = Field(default=None, ge=1, le=MAX_ROW_ID)


class BulkAssignIn(BaseModel):
    requests: list[PickIn] = Field(min_length=1, max_length=request_assignment.MAX_BULK)
    crew_id: int = Field(ge=1, le=MAX_ROW_ID)
    note: str | None = Field(default=None, max_length=store.MAX_NOTE)
    force: bool = False


class RefusedOut(BaseModel):
    number: str
    # conflict (changed meanwhile), not_found, crew_mismatch, transition …
    code: str
    message: str


class BulkAssignOut(BaseModel):
    assigned: list[RequestOut]
    refused: list[RefusedOut]


@router.post("/api/requests/assign", response_model=BulkAssignOut)
def assign_many(body: BulkAssignIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Give several requests to one crew in one action. Each is assigned whole or not at all:
    one changed since its `version` (or refused for another reason) is listed in `refused`
    with the reason, the others are assigned. An unknown crew refuses the whole action (404)."""
    _need(actor, DISPATCHERS, "assign requests")
    try:
        result = request_assignment.assign_many(
            session,
            [(pick.number, pick.version) for pick in body.requests],
            body.crew_id,
            actor=actor.by,
            note=body.note,
            force=body.force,
        )
    except LifecycleError as exc:
        raise _refused(exc) from None
    now = utcnow()
    return {
        "assigned": [request_views.request_dict(r, now=now) for r in result.assigned],
        "refused": [asdict(r) for r in result.refused],
    }


@router.post("/api/requests/{number}/calls", response_model=RequestDetailOut)
def link_call(number: str, body: LinkIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    """Note that a call mentions the request (the resident called about it again)."""
    _need(actor, CREATORS, "link calls")
    try:
        request = store.link_call(session, _check_number(number), body.call_id, actor=actor.by)
    except LifecycleError as exc:
        raise _refused(exc) from None
    return request_views.request_dict(request, detail=True)


@router.get("/api/crews", response_model=list[CrewOut])
def list_crews(session: SessionDep) -> list[dict[str, Any]]:
    return [request_views.crew_dict(c) for c in request_crews.list_crews(session)]


@router.post("/api/crews", response_model=CrewOut, status_code=201)
def add_crew(body: CrewIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    _need(actor, DISPATCHERS, "add crews")
    try:
        crew = request_crews.add_crew(
            session,
            body.name,
            categories=body.categories,
            districts=body.districts,
            known_categories=life.load_categories(),
            phone=body.phone,
            tenant_id=actor.principal.tenant_id,
        )
    except LifecycleError as exc:
        raise _refused(exc) from None
    return request_views.crew_dict(crew)
