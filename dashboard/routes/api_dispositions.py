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
from dashboard.deps import PrincipalDep, SessionDep, SettingsDep
from dashboard.routes.schemas import DispositionOut

router = APIRouter(tags=["dispositions"])


class DispositionIn(BaseModel):
    category: str = Field(min_length=1, max_length=32)
    note: str | None = Field(default=None, max_length=MAX_NOTE)
    callout_created: bool = False
    # Default: the signed-in operator's roster login, else the call's operator. An operator
    # account may name only itself (dashboard/auth.py).
    operator: str | None = Field(default=None, max_length=64)


@router.post("/api/calls/{call_id}/disposition", response_model=DispositionOut)
def post_disposition(
    call_id: int,
    body: DispositionIn,
    session: SessionDep,
    settings: SettingsDep,
    principal: PrincipalDep,
) -> DispositionOut:
    operator = body.operator or principal.operator_login
    try:
        row = save_disposition(
            session,
            call_id,
            DispositionInput(body.category, body.note, body.callout_created, operator),
            categories=settings.disposition_categories,
            now=utcnow(),
        )
    except DispositionError as exc:
        status = 404 if exc.code == "call_not_found" else 422
        raise HTTPException(
            status_code=status, detail={"id": exc.code, "message": str(exc)}
        ) from exc
    return DispositionOut.model_validate(row)


@router.get("/api/calls/{call_id}/disposition", response_model=DispositionOut)
def read_disposition(call_id: int, session: SessionDep) -> DispositionOut:
    row = get_disposition(session, call_id)
    if row is None:
        raise HTTPException(status_code=404, detail="no disposition for this call")
    return DispositionOut.model_validate(row)


@router.get("/api/dispositions/categories", response_model=list[str])
def categories(settings: SettingsDep) -> list[str]:
    return list(settings.disposition_categories)
