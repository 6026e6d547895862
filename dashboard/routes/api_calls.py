"""`/api/calls`: the call log as JSON, newest first.

The body stays a plain list (a contract); paging rides in headers, as GitHub's API does:
`Link: <...>; rel="next"` whenever more calls match (a keyset cursor: stable while new calls
arrive, and as fast on page 1000 as on page 1), and `X-Total-Count` when asked for with
`with_total=true` (counting a million rows costs more than fetching a page, so it is opt-in).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, TypeVar
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response

from call_router import call_search, tenant_wall
from call_router.dispositions import disposition_history
from call_router.models import Call
from dashboard.deps import SessionDep, SettingsDep
from dashboard.routes.schemas import (
    MAX_ROW_ID,
    BoundedAwareTime,
    CallDetailOut,
    CallOut,
    DispositionChangeOut,
    RowId,
    recording_reference,
)

router = APIRouter(prefix="/api/calls", tags=["calls"])

Out = TypeVar("Out", bound=CallOut)


def call_out(model: type[Out], call: Call, recordings_dir: Path) -> Out:
    """The API's view of a call row: the utterance as a recordings-relative reference."""
    out = model.model_validate(call)
    out.utterance = recording_reference(call.utterance_path, recordings_dir)
    return out


@router.get("", response_model=list[CallOut])
def list_calls(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    caller: Annotated[
        str | None, Query(max_length=64, description="Caller number in any spelling")
    ] = None,
    # Aware only: a naive time would be read in an unknown zone and silently shift the window.
    since: Annotated[BoundedAwareTime | None, Query(description="ISO 8601 with offset")] = None,
    limit: Annotated[int, Query(ge=1, le=call_search.MAX_PAGE)] = 100,
    # Past every row id (32-bit): PostgreSQL refuses an OFFSET beyond bigint with a 500.
    offset: Annotated[int, Query(ge=0, le=MAX_ROW_ID)] = 0,
    until: Annotated[
        BoundedAwareTime | None, Query(description="ISO 8601 with offset; started before this")
    ] = None,
    queue: Annotated[str | None, Query(max_length=64)] = None,
    intent: Annotated[str | None, Query(max_length=64)] = None,
    outcome: Annotated[str | None, Query(max_length=64)] = None,
    operator: Annotated[str | None, Query(max_length=64)] = None,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="From a previous page's Link rel=next; not with offset"),
    ] = None,
    with_total: Annotated[
        bool, Query(description="Also count all matching calls (X-Total-Count header)")
    ] = False,
    tenant: Annotated[
        str | None,
        Query(max_length=32, description="A tenant's slug, or `centre`; within your own wall"),
    ] = None,
    direction: Annotated[
        Literal["inbound", "callback", "internal", "feedback"] | None,
        Query(
            description="inbound (residents calling), callback (operators' click-to-call), "
            "internal (operators' test calls), feedback (the automatic 'is it fixed?' call)"
        ),
    ] = None,
) -> list[CallOut]:
    # Narrows the request's tenant wall, never widens it (call_router/tenant_wall.py).
    tenant_wall.narrow(session, tenant)
    after = None
    if cursor is not None:
        if offset:
            raise HTTPException(status_code=422, detail="give either cursor or offset")
        try:
            after = call_search.CallPosition.from_token(cursor)
        except ValueError as exc:
            raise HTTPException(status_code=422, detail="cursor is not valid") from exc
    where = call_search.CallFilter(
        caller=caller,
        since=since,
        until=until,
        queue=queue,
        intent=intent,
        outcome=outcome,
        operator=operator,
        direction=direction,
    )
    # One row more than asked for tells whether a next page exists without counting.
    calls = call_search.list_calls(
        session,
        where=where,
        limit=limit + 1,
        offset=offset,
        country=settings.country_code,
        after=after,
    )
    page, more = calls[:limit], len(calls) > limit
    if more:
        last = page[-1]
        token = call_search.CallPosition(last.started_at, last.id).token()
        params = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAGING]
        # Relative (RFC 8288 allows it): right behind a proxy that rewrites scheme or host.
        query = urlencode([*params, ("cursor", token)])
        response.headers["Link"] = f'<{request.url.path}?{query}>; rel="next"'
    if with_total:
        count = call_search.count_calls(session, where, country=settings.country_code)
        response.headers["X-Total-Count"] = str(count)
    return [call_out(CallOut, call, settings.recordings_dir) for call in page]


# Not carried into the next page's link: the cursor replaces the position, and the total was
# given with the first page (the filters and the limit carry over).
_PAGING = frozenset({"cursor", "offset", "with_total"})


@router.get("/{call_id}", response_model=CallDetailOut)
def get_call(call_id: RowId, session: SessionDep, settings: SettingsDep) -> CallDetailOut:
    call = call_search.call_with_events(session, call_id)
    if call is None:
        raise HTTPException(status_code=404, detail="call not found")
    out = call_out(CallDetailOut, call, settings.recordings_dir)
    out.disposition_history = [
        DispositionChangeOut.model_validate(row) for row in disposition_history(session, call_id)
    ]
    return out
