"""`/api/requests` and `/api/crews`: reading, exporting and creating service requests, and
the crews. The moves of a request (state, assignment, linked calls) are in
api_request_moves.py; who may do what is request_access.py's table. Text from residents is
returned as data (JSON) and defused in the CSV export.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from fastapi.responses import StreamingResponse

from call_router import request_crews, request_reads, request_views
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.models import Call, utcnow
from call_router.request_reads import RequestFilter
from dashboard import csv_export
from dashboard.deps import ActorDep, DatabaseDep, SessionDep
from dashboard.routes.request_access import (
    CALL_READERS,
    CREATORS,
    DISPATCHERS,
    known_number,
    need,
    refusals_as_http,
)
from dashboard.routes.request_schemas import (
    CATEGORY_CODE,
    NO_CONTROL_CHARACTERS,
    CreatedOut,
    CrewIn,
    CrewOut,
    RequestDetailOut,
    RequestIn,
    RequestOut,
    State,
    SuggestionOut,
)
from dashboard.routes.schemas import MAX_ROW_ID

router = APIRouter(tags=["requests"])

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
StatesQuery = Annotated[list[State] | None, Query(max_length=len(life.STATES))]
CategoryQuery = Annotated[str | None, Query(pattern=CATEGORY_CODE)]


@router.get("/api/requests", response_model=list[RequestOut])
def list_requests(
    session: SessionDep,
    state: StatesQuery = None,
    category: CategoryQuery = None,
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
    state: StatesQuery = None,
    category: CategoryQuery = None,
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
    need(actor, CREATORS, "create requests")
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
    with refusals_as_http():
        created = store.create_request(
            session,
            new,
            categories=life.load_categories(),
            actor=actor.by,
            tenant_id=tenant_id,
            call_id=body.call_id,
        )
    if created.attached:
        response.status_code = 200
    return {**request_views.request_dict(created.request), "attached": created.attached}


@router.get("/api/requests/suggest", response_model=SuggestionOut)
def suggest(
    session: SessionDep, actor: ActorDep, call_id: Annotated[int, Query(ge=1, le=MAX_ROW_ID)]
) -> dict[str, Any]:
    """The operator's new-request form prefilled from a call (screen-pop): the category from
    the recognised intent, the caller's last address, and their open requests to attach to."""
    need(actor, CALL_READERS, "read calls")
    with refusals_as_http():
        found = request_views.suggest_for_call(session, call_id, life.load_categories())
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
    with refusals_as_http():
        request = store.get_request(session, known_number(number))
    return request_views.request_dict(request, detail=True)


@router.get("/api/crews", response_model=list[CrewOut])
def list_crews(session: SessionDep) -> list[dict[str, Any]]:
    return [request_views.crew_dict(c) for c in request_crews.list_crews(session)]


@router.post("/api/crews", response_model=CrewOut, status_code=201)
def add_crew(body: CrewIn, session: SessionDep, actor: ActorDep) -> dict[str, Any]:
    need(actor, DISPATCHERS, "add crews")
    with refusals_as_http():
        crew = request_crews.add_crew(
            session,
            body.name,
            categories=body.categories,
            districts=body.districts,
            known_categories=life.load_categories(),
            phone=body.phone,
            tenant_id=actor.principal.tenant_id,
        )
    return request_views.crew_dict(crew)
