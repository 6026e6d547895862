"""`/api/callbacks`: the residents to call back, and the operators' work on them.

GET keeps the original fields (an integrator contract) and adds the work-list ones. Errors of
the workflow are HTTP 409/404 with a stable `code` (callbacks.CallbackError.code).
Who acts comes from the credentials (dashboard/deps.py `Actor`): an operator account always
acts as its own roster login (`operator` in the body may be left out; naming another is 403);
a supervisor or supervisor token names the operator it acts for, and the entry's history
records it in `data.by`.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, Field

from call_router import (
    call_search,
    callback_claims,
    callback_list,
    callbacks,
    click_to_call,
    tenant_wall,
)
from call_router.callback_policy import Outcome
from call_router.models import CALLBACK_OPEN, utcnow
from dashboard.deps import ActorDep, AmiDep, DatabaseDep, SessionDep, SettingsDep, StateDep
from dashboard.routes.schemas import BoundedTime, CallbackOut, RowId, Timestamp, _FromRow

router = APIRouter(prefix="/api/callbacks", tags=["callbacks"])

ALL = "all"
LOGIN = r"^[A-Za-z0-9_.@+-]{1,64}$"


class CallbackItemOut(CallbackOut):
    intent: str | None
    category: str | None
    priority: int
    due_at: Timestamp | None
    placed_at: Timestamp | None
    claimed_by: str | None
    claimed_until: Timestamp | None
    tries: int
    next_attempt_at: Timestamp | None
    last_outcome: str | None
    active_call_id: int | None
    resolved_by: str | None
    escalated_at: Timestamp | None
    note: str | None


class HistoryOut(_FromRow):
    id: int
    at: Timestamp
    action: str
    operator: str | None
    outcome: str | None
    call_id: int | None
    note: str | None
    data: dict[str, object]


class CallbackDetailOut(CallbackItemOut):
    history: list[HistoryOut]


class OperatorIn(BaseModel):
    # Required for supervisors; an operator account acts as itself either way.
    operator: str | None = Field(default=None, pattern=LOGIN)


class ReleaseIn(BaseModel):
    operator: str | None = Field(default=None, pattern=LOGIN)


class OutcomeIn(BaseModel):
    outcome: Literal["reached", "no_answer", "busy", "wrong_number", "retry"]
    operator: str | None = Field(default=None, pattern=LOGIN)
    # For "retry": when the resident asked to be called (ISO 8601 with a time zone).
    at: BoundedTime | None = None
    note: str | None = Field(default=None, max_length=1000)


class CallStartedOut(BaseModel):
    callback_id: int
    call_id: int
    linkedid: str
    operator: str


def _conflict(exc: callbacks.CallbackError) -> HTTPException:
    status = 404 if exc.code == "not_found" else 409
    return HTTPException(status, detail={"code": exc.code, "message": str(exc)})


def _detail(session: SessionDep, callback_id: int) -> CallbackDetailOut:
    entry = callback_list.get_callback(session, callback_id)
    if entry is None:
        raise HTTPException(404, detail={"code": "not_found", "message": "no such callback"})
    item = CallbackItemOut.model_validate(entry)
    rows = [HistoryOut.model_validate(row) for row in callback_list.history(session, callback_id)]
    return CallbackDetailOut(**item.model_dump(), history=rows)


@router.get("", response_model=list[CallbackItemOut])
def list_callbacks(
    session: SessionDep,
    status: Annotated[
        str, Query(pattern=r"^[a-z_]{1,16}$", description="`open` (default), `all`, or a status")
    ] = CALLBACK_OPEN,
    tenant: Annotated[
        str | None,
        Query(max_length=32, description="A tenant's slug, or `centre`; within your own wall"),
    ] = None,
) -> list[CallbackItemOut]:
    """Open entries in calling order: emergencies, repeat callers, then by deadline and age."""
    tenant_wall.narrow(session, tenant)
    rows = callback_list.list_callbacks(session, None if status == ALL else status, now=utcnow())
    return [CallbackItemOut.model_validate(row) for row in rows]


class SummaryOut(BaseModel):
    open: int
    overdue: int
    emergency: int
    claimed: int
    dialling: int
    # Missed calls today (hotline time) with a withheld number: no entry, but counted.
    anonymous_missed: int


@router.get("/summary", response_model=SummaryOut)
def summary(
    session: SessionDep,
    state: StateDep,
    tenant: Annotated[
        str | None,
        Query(max_length=32, description="A tenant's slug, or `centre`; within your own wall"),
    ] = None,
) -> SummaryOut:
    tenant_wall.narrow(session, tenant)
    now = utcnow()
    since = call_search.start_of_day(now, state.zone)
    return SummaryOut(**callback_list.summary(session, now, since))


@router.get("/{callback_id}", response_model=CallbackDetailOut)
def get_callback(session: SessionDep, callback_id: RowId) -> CallbackDetailOut:
    return _detail(session, callback_id)


@router.post("/{callback_id}/claim", response_model=CallbackDetailOut)
def claim(
    session: SessionDep,
    settings: SettingsDep,
    actor: ActorDep,
    callback_id: RowId,
    body: OperatorIn,
) -> CallbackDetailOut:
    operator = actor.required_operator(body.operator)
    try:
        callback_claims.claim(
            session,
            callback_id,
            operator,
            utcnow(),
            timeout=settings.callback_claim_timeout,
            by=actor.by,
        )
    except callbacks.CallbackError as exc:
        raise _conflict(exc) from exc
    return _detail(session, callback_id)


@router.post("/{callback_id}/release", response_model=CallbackDetailOut)
def release(
    session: SessionDep, actor: ActorDep, callback_id: RowId, body: ReleaseIn
) -> CallbackDetailOut:
    """An operator releases only their own claim; a supervisor naming nobody releases any."""
    operator = actor.operator(body.operator)
    try:
        callback_claims.release(session, callback_id, utcnow(), operator=operator, by=actor.by)
    except callbacks.CallbackError as exc:
        raise _conflict(exc) from exc
    return _detail(session, callback_id)


@router.post("/{callback_id}/outcome", response_model=CallbackDetailOut)
def outcome(
    session: SessionDep, settings: SettingsDep, actor: ActorDep, callback_id: RowId, body: OutcomeIn
) -> CallbackDetailOut:
    if body.at is not None and body.at.tzinfo is None:
        raise HTTPException(422, detail={"code": "bad_time", "message": "`at` needs a time zone"})
    operator = actor.operator(body.operator)
    try:
        callback_claims.record_outcome(
            session,
            callback_id,
            Outcome(body.outcome),
            utcnow(),
            rules=callbacks.CallbackRules.from_settings(settings),
            operator=operator,
            retry_at=body.at,
            note=body.note,
            by=actor.by,
        )
    except callbacks.CallbackError as exc:
        raise _conflict(exc) from exc
    return _detail(session, callback_id)


@router.post("/{callback_id}/call", response_model=CallStartedOut, status_code=202)
async def call(
    settings: SettingsDep,
    db: DatabaseDep,
    ami: AmiDep,
    actor: ActorDep,
    callback_id: RowId,
    body: OperatorIn,
) -> CallStartedOut:
    """Ring the operator's phone, then the resident. Returns once the call is placed (202);
    its progress appears in the entry's history and the call log."""
    operator = actor.required_operator(body.operator)
    try:
        placed = await asyncio.to_thread(
            click_to_call.prepare,
            db,
            callback_id,
            operator,
            rules=callbacks.CallbackRules.from_settings(settings),
            by=actor.by,
        )
    except callbacks.CallbackError as exc:
        raise _conflict(exc) from exc
    # The operator's phone may ring for 30 s: don't hold the HTTP request for it. The Originate
    # goes over this process's one AMI link.
    click_to_call.complete_soon(settings, db, placed, link=ami)
    return CallStartedOut(
        callback_id=callback_id,
        call_id=placed.call_id,
        linkedid=placed.linkedid,
        operator=placed.operator,
    )
