"""Supervisors' call control (call_router/call_control/): the API, the buttons' form posts and
the audit page.

    POST /api/calls/{id}/hangup                     end a (stuck) call
    POST /api/calls/{id}/move     {queue|operator}  redirect a waiting caller
    POST /api/calls/move          {calls, queue|operator}   several callers at once
    POST /api/calls/{id}/monitor  {mode}            ring my phone: listen, whisper or barge
    GET  /api/control/audit                         who did what, newest first
    GET  /api/control/monitors [?call_id=]          who is monitoring whom now
    GET  /supervision/audit                         the same as a page

Supervisors only (their tokens too; dashboard/auth.py SUPERVISOR_ONLY), with the CSRF token for a
signed-in browser. A tenant's supervisor acts only on their tenant's calls: the call is read
behind the tenant wall, another tenant's id is a 404. Every action goes through this process's
one AMI link (`AmiDep`). Buttons on the call page and the wallboard post forms here
(`/calls/{id}/control/...`) and come back to the page with the result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Annotated, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Form, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select

from call_router.call_control import CallControl
from call_router.call_control.audit import audit_rows
from call_router.call_control.base import ControlError, Outcome
from call_router.call_control.moving import MAX_MOVE
from call_router.models import Call
from dashboard.deps import ActorDep, AmiDep, SessionDep, StateDep
from dashboard.i18n import render
from dashboard.routes.schemas import RowId, Timestamp

router = APIRouter(tags=["call control"])
pages = APIRouter(include_in_schema=False)

QUEUE_RE = r"^[a-z0-9_-]{1,32}$"
LOGIN_RE = r"^[A-Za-z0-9_.-]{1,64}$"


class OutcomeOut(BaseModel):
    action: str
    call_id: int | None
    ok: bool
    detail: str
    data: dict[str, object]

    @classmethod
    def of(cls, outcome: Outcome) -> OutcomeOut:
        return cls(
            action=outcome.action,
            call_id=outcome.call_id,
            ok=outcome.ok,
            detail=outcome.detail,
            data=outcome.data,
        )


class MoveTarget(BaseModel):
    queue: str | None = Field(default=None, pattern=QUEUE_RE)
    operator: str | None = Field(default=None, pattern=LOGIN_RE)

    @model_validator(mode="after")
    def one_target(self) -> MoveTarget:
        if (self.queue is None) == (self.operator is None):
            raise ValueError("give exactly one of `queue` or `operator`")
        return self


class MoveManyIn(MoveTarget):
    calls: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(
        min_length=1, max_length=MAX_MOVE
    )


class MonitorIn(BaseModel):
    mode: Literal["listen", "whisper", "barge"] = "listen"


class AuditOut(BaseModel):
    id: int
    at: Timestamp
    by: str
    action: str
    call_id: int | None
    operator: str | None
    target: str | None
    result: str
    detail: str | None


class MonitorOut(BaseModel):
    supervisor: str
    mode: str
    operator: str | None
    call_id: int | None
    seconds: int


def _error(exc: ControlError) -> JSONResponse:
    return JSONResponse({"detail": exc.message, "code": exc.code}, status_code=exc.status)


def _control(state: StateDep, ami: AmiDep, actor: ActorDep) -> CallControl:
    return CallControl(state.settings, state.db, ami, by=actor.by)


async def _one(moves: Awaitable[list[Outcome]]) -> Outcome:
    """The outcome of a move of one call."""
    (outcome,) = await moves
    return outcome


async def _answer(work: Awaitable[Outcome]) -> Response:
    """An action's outcome as JSON, a refusal as its status and code."""
    try:
        outcome = await work
    except ControlError as exc:
        return _error(exc)
    return JSONResponse(OutcomeOut.of(outcome).model_dump(mode="json"))


@router.post("/api/calls/{call_id}/hangup", response_model=OutcomeOut)
async def hangup(call_id: RowId, state: StateDep, ami: AmiDep, actor: ActorDep) -> Response:
    return await _answer(_control(state, ami, actor).hangup(call_id))


@router.post("/api/calls/move", response_model=list[OutcomeOut])
async def move_many(body: MoveManyIn, state: StateDep, ami: AmiDep, actor: ActorDep) -> Response:
    """Several waiting callers at once; one result per call (200 even if some were refused:
    each says why). An unknown queue or operator refuses all of them first (404)."""
    try:
        outcomes = await _control(state, ami, actor).move(
            body.calls, queue=body.queue, operator=body.operator
        )
    except ControlError as exc:
        return _error(exc)
    return JSONResponse([OutcomeOut.of(o).model_dump(mode="json") for o in outcomes])


@router.post("/api/calls/{call_id}/move", response_model=OutcomeOut)
async def move(
    call_id: RowId, body: MoveTarget, state: StateDep, ami: AmiDep, actor: ActorDep
) -> Response:
    try:
        outcome = await _one(
            _control(state, ami, actor).move([call_id], queue=body.queue, operator=body.operator)
        )
    except ControlError as exc:
        return _error(exc)
    if not outcome.ok:
        code = str(outcome.data.get("code", "refused"))
        return JSONResponse(
            {"detail": outcome.detail, "code": code},
            status_code=404 if code == "not_found" else 409,
        )
    return JSONResponse(OutcomeOut.of(outcome).model_dump(mode="json"))


@router.post("/api/calls/{call_id}/monitor", response_model=OutcomeOut)
async def monitor(
    call_id: RowId,
    state: StateDep,
    ami: AmiDep,
    actor: ActorDep,
    body: Annotated[MonitorIn | None, Body()] = None,
) -> Response:
    """Ring the supervisor's own phone (their account's linked roster login) and attach it to
    the operator's side of the call. Answers once the phone answered (or did not)."""
    mode = (body or MonitorIn()).mode
    return await _answer(
        _control(state, ami, actor).monitor(call_id, mode, actor.principal.operator_login)
    )


@router.get("/api/control/monitors", response_model=list[MonitorOut])
async def monitors(
    state: StateDep,
    ami: AmiDep,
    actor: ActorDep,
    call_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    """Monitor sessions in progress (supervisor's phone, mode, operator, call), read from
    Asterisk's channels: a session that ended is gone. A mode switched by DTMF shows once
    this process's AMI link saw the digit."""
    try:
        found = await _control(state, ami, actor).monitors(state.spy_modes)
    except ControlError as exc:
        return _error(exc)
    shown = [
        MonitorOut.model_validate(s, from_attributes=True)
        for s in found
        if call_id is None or s.call_id == call_id
    ]
    return JSONResponse([m.model_dump(mode="json") for m in shown])


@router.get("/api/control/audit", response_model=list[AuditOut])
def audit(session: SessionDep) -> list[AuditOut]:
    return [AuditOut.model_validate(row, from_attributes=True) for row in audit_rows(session)]


# --- the pages' buttons (form posts, CSRF checked by the access rule) ---------------------------


@pages.get("/supervision/audit", response_class=HTMLResponse, name="control_audit_page")
def audit_page(request: Request, session: SessionDep, state: StateDep) -> Response:
    context = {"rows": audit_rows(session), "search": None}
    response = render(
        state.templates, request, "control_audit.html", context, state.settings.default_language
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _back(request: Request, call_id: int, message: str) -> Response:
    target = request.app.url_path_for("call_page", call_id=str(call_id))
    return RedirectResponse(f"{target}?{urlencode({'control': message[:200]})}", 303)


async def _form_answer(request: Request, call_id: int, work: Awaitable[Outcome]) -> Response:
    """A button's action: back to the call's page saying what happened (or why not)."""
    try:
        outcome = await work
    except ControlError as exc:
        return _back(request, call_id, exc.message)
    return _back(request, call_id, outcome.detail)


@pages.post("/calls/{call_id}/control/hangup", name="control_hangup_form")
async def hangup_form(
    call_id: RowId, request: Request, state: StateDep, ami: AmiDep, actor: ActorDep
) -> Response:
    return await _form_answer(request, call_id, _control(state, ami, actor).hangup(call_id))


@pages.post("/calls/{call_id}/control/move", name="control_move_form")
async def move_form(
    call_id: RowId,
    request: Request,
    state: StateDep,
    ami: AmiDep,
    actor: ActorDep,
    queue: Annotated[str, Form(pattern=QUEUE_RE)],
) -> Response:
    control = _control(state, ami, actor)
    return await _form_answer(request, call_id, _one(control.move([call_id], queue=queue)))


@pages.post("/calls/{call_id}/control/monitor", name="control_monitor_form")
async def monitor_form(
    call_id: RowId,
    request: Request,
    state: StateDep,
    ami: AmiDep,
    actor: ActorDep,
    mode: Annotated[Literal["listen", "whisper", "barge"], Form()] = "listen",
) -> Response:
    control = _control(state, ami, actor)
    phone = actor.principal.operator_login
    return await _form_answer(request, call_id, control.monitor(call_id, mode, phone))


@pages.post("/control/move-waiting", name="control_move_waiting_form")
async def move_waiting_form(
    request: Request,
    state: StateDep,
    ami: AmiDep,
    actor: ActorDep,
    from_queue: Annotated[str, Form(pattern=QUEUE_RE)],
    to_queue: Annotated[str, Form(pattern=QUEUE_RE)],
) -> Response:
    """The wallboard's "everyone waiting in heating -> coordinator": every call of the queue
    with no operator yet (behind the tenant wall), moved in one go."""
    ids = await asyncio.to_thread(_waiting_in, state, from_queue)
    if not ids:
        message = f"nobody is waiting in {from_queue}"
    else:
        try:
            outcomes = await _control(state, ami, actor).move(ids[:MAX_MOVE], queue=to_queue)
        except ControlError as exc:
            message = exc.message
        else:
            moved = sum(1 for o in outcomes if o.ok)
            message = f"moved {moved} of {len(outcomes)} from {from_queue} to {to_queue}"
    target = request.app.url_path_for("wallboard_page")
    return RedirectResponse(f"{target}?{urlencode({'control': message[:200]})}", 303)


def _waiting_in(state: StateDep, queue: str) -> list[int]:
    with state.db.session() as session:
        return list(
            session.scalars(
                select(Call.id)
                .where(Call.queue == queue, Call.ended_at.is_(None), Call.answered_at.is_(None))
                .order_by(Call.queue_joined_at, Call.id)
            )
        )
