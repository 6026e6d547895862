"""`/api/calls/{id}/disposition`: the operator's answer after a call (in GET /api/calls/{id})."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, Field

from call_router.dispositions import (
    MAX_NOTE,
    DispositionError,
    DispositionInput,
    get_disposition,
    save_disposition,
)
from call_router.models import utcnow
from dashboard.deps import ActorDep, SessionDep, SettingsDep
from dashboard.routes.schemas import DispositionOut, RowId

router = APIRouter(tags=["dispositions"])

STATUS = {"call_not_found": 404, "not_yours": 403}


class DispositionIn(BaseModel):
    category: str = Field(min_length=1, max_length=32)
    note: str | None = Field(default=None, max_length=MAX_NOTE)
    callout_created: bool = False
    # An operator account always saves as itself (naming another is 403); a supervisor may
    # name the operator it saves for, else the call's operator. Who saved it is recorded.
    operator: str | None = Field(default=None, max_length=64)


@router.post("/api/calls/{call_id}/disposition", response_model=DispositionOut)
def post_disposition(
    call_id: RowId,
    body: DispositionIn,
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
) -> DispositionOut:
    """Save or correct the call's disposition; every save stays in the call's
    `disposition_history` (GET /api/calls/{id}). An operator may not replace another
    operator's disposition (403 `not_yours`)."""
    operator = actor.operator(body.operator)
    data = DispositionInput(
        body.category, body.note, body.callout_created, operator, changed_by=actor.by
    )
    try:
        row = save_disposition(
            session,
            call_id,
            data,
            categories=settings.disposition_categories,
            now=utcnow(),
            only_own=actor.is_operator,
        )
    except DispositionError as exc:
        status = STATUS.get(exc.code, 422)
        raise HTTPException(
            status_code=status, detail={"id": exc.code, "message": str(exc)}
        ) from exc
    return DispositionOut.model_validate(row)


@router.get("/api/calls/{call_id}/disposition", response_model=DispositionOut)
def read_disposition(call_id: RowId, session: SessionDep) -> DispositionOut:
    row = get_disposition(session, call_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no disposition for this call")
    return DispositionOut.model_validate(row)


@router.get("/api/dispositions/categories", response_model=list[str])
def categories(settings: SettingsDep) -> list[str]:
    return list(settings.disposition_categories)
