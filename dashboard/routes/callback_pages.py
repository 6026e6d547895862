"""The operator's callback list: `/callbacks` ("my claimed entries" and the open queue in
calling order, overdue ones marked), with fragments the page's script reloads after an action,
the progress of a click-to-call, and the live feed `/callbacks/stream` (Server-Sent Events):
every change to the list, whichever process made it (call_router/live_state.py publishes
them after the commit), pushes the lists again within a second, so operators see each other's
claims; the page polls slowly only while the feed is down.

Claims, calls and outcomes go through the JSON API (dashboard/routes/api_callbacks.py); the
order is callback_list.list_callbacks' (callback_policy.order_key), never re-sorted here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from call_router import call_search, callback_dialing, callback_list, callback_policy
from call_router.live_state import EVENT_CALLBACK
from call_router.models import CALLBACK_OPEN, Callback, CallEvent, utcnow
from dashboard.deps import SessionDep, StateDep
from dashboard.i18n import render, request_language, translate
from dashboard.live import live_stream, sse_message, sse_response
from dashboard.routes.operator_pages import FULL, OperatorParam, acting_operator_login
from dashboard.routes.schemas import RowId

router = APIRouter(include_in_schema=False)

OUTCOMES = ("reached", "no_answer", "busy", "wrong_number", "retry")
# How often the page's script asks for the progress of a call-back it placed.
PROGRESS_POLL_MS = 1000
# The page's fallback: reload the lists this often while the live feed is down.
REFRESH_MS = 60000
# The feed pushes the lists this often without events too: a claim runs out by the clock.
STREAM_REFRESH_SECONDS = 30.0
STREAM_DEBOUNCE_SECONDS = 0.1

# The stages of a click-to-call, in order (call_router/click_to_call.py, callbacks.py).
STAGE_OPERATOR_RINGING = "operator_ringing"
STAGE_RESIDENT_RINGING = "resident_ringing"
STAGE_CONNECTED = "connected"
STAGE_ENDED = "ended"


@dataclass(frozen=True)
class Row:
    entry: Callback
    overdue: bool
    mine: bool
    claimed_by_other: bool


def split_lists(
    entries: Sequence[Callback], login: str | None, now: datetime
) -> tuple[list[Row], list[Row]]:
    """(my live claims, everything else open), each in the given (calling) order."""
    mine: list[Row] = []
    others: list[Row] = []
    for entry in entries:
        live_claim = entry.claimed_by is not None and (
            entry.claimed_until is None or entry.claimed_until > now
        )
        is_mine = live_claim and login is not None and entry.claimed_by == login
        row = Row(
            entry=entry,
            overdue=callback_policy.is_overdue(entry.due_at, now),
            mine=is_mine,
            claimed_by_other=live_claim and not is_mine,
        )
        (mine if is_mine else others).append(row)
    return mine, others


def call_stage(events: Sequence[CallEvent], ended: bool) -> str:
    """Where a click-to-call is: ringing the operator, ringing the resident, talking, over."""
    if ended:
        return STAGE_ENDED
    kinds = {event.kind: event for event in events}
    dial_end = kinds.get(callback_dialing.EVENT_DIAL_END)
    if dial_end is not None:
        status = str(dial_end.data.get("status") or "") if isinstance(dial_end.data, dict) else ""
        return STAGE_CONNECTED if status == "ANSWER" else STAGE_ENDED
    if callback_dialing.EVENT_DIAL_BEGIN in kinds:
        return STAGE_RESIDENT_RINGING
    return STAGE_OPERATOR_RINGING


def _lists_context(session: Session, login: str | None, now: datetime) -> dict[str, Any]:
    entries = callback_list.list_callbacks(session, CALLBACK_OPEN, now=now)
    mine, others = split_lists(entries, login, now)
    return {"mine": mine, "others": others, "login": login, "FULL": FULL, "outcomes": OUTCOMES}


@router.get("/callbacks", response_class=HTMLResponse)
def callbacks_page(
    request: Request, session: SessionDep, state: StateDep, operator: OperatorParam = None
) -> Response:
    login = acting_operator_login(request, operator)
    context = {
        "search": None,
        "progress_poll_ms": PROGRESS_POLL_MS,
        "refresh_ms": REFRESH_MS,
        **_lists_context(session, login, utcnow()),
    }
    return render(
        state.templates, request, "callbacks.html", context, state.settings.default_language
    )


@router.get("/callbacks/lists", response_class=HTMLResponse)
def callback_lists(
    request: Request, session: SessionDep, state: StateDep, operator: OperatorParam = None
) -> Response:
    """The two lists alone (the page swaps them in after an action)."""
    login = acting_operator_login(request, operator)
    return render(
        state.templates,
        request,
        "partials/callback_lists.html",
        _lists_context(session, login, utcnow()),
        state.settings.default_language,
    )


def is_list_change(event: dict[str, Any]) -> bool:
    """Whether a live event changes the callback list (or may have: a resync)."""
    return event.get("type") in (EVENT_CALLBACK, "resync")


@router.get("/callbacks/stream")
async def callbacks_stream(
    request: Request, state: StateDep, operator: OperatorParam = None
) -> StreamingResponse:
    """The two lists as server-rendered (autoescaped) HTML, now and after every change."""
    login = acting_operator_login(request, operator)
    lang, _ = request_language(request, state.settings.default_language)
    template = state.templates.env.get_template("partials/callback_lists.html")

    def lists_html() -> str:
        with state.db.session() as session:
            context = _lists_context(session, login, utcnow())
            return template.render({"request": request, "lang": lang, **context})

    async def lists_now(_redis: Redis, live: bool) -> str:
        return sse_message("lists", {"html": await run_in_threadpool(lists_html), "live": live})

    return sse_response(
        live_stream(
            request,
            state,
            lists_now,
            relevant=is_list_change,
            refresh_seconds=STREAM_REFRESH_SECONDS,
            debounce_seconds=STREAM_DEBOUNCE_SECONDS,
        )
    )


@router.get("/callbacks/{callback_id}/history", response_class=HTMLResponse)
def callback_history(
    callback_id: RowId, request: Request, session: SessionDep, state: StateDep
) -> Response:
    if callback_list.get_callback(session, callback_id) is None:
        raise HTTPException(404, detail="no such callback")
    return render(
        state.templates,
        request,
        "partials/callback_history.html",
        {"history": callback_list.history(session, callback_id), "FULL": FULL},
        state.settings.default_language,
    )


class ProgressOut(BaseModel):
    callback_id: int
    call_id: int
    stage: str
    text: str
    done: bool
    call_outcome: str | None
    entry_status: str


@router.get("/callbacks/{callback_id}/progress/{call_id}", response_model=ProgressOut)
def callback_progress(
    callback_id: RowId, call_id: RowId, request: Request, session: SessionDep, state: StateDep
) -> ProgressOut:
    """How the click-to-call `call_id` of the entry is getting on (the page polls this)."""
    entry = callback_list.get_callback(session, callback_id)
    call = call_search.call_with_events(session, call_id)
    if entry is None or call is None:
        raise HTTPException(404, detail="no such callback or call")
    lang, _ = request_language(request, state.settings.default_language)
    stage = call_stage(call.events, call.ended_at is not None)
    text = translate(lang, f"cbp.stage.{stage}")
    if stage == STAGE_ENDED and call.outcome:
        outcome = translate(lang, f"cbp.call_outcome.{call.outcome}")
        text = f"{text}: {call.outcome if outcome.startswith('cbp.') else outcome}"
    return ProgressOut(
        callback_id=callback_id,
        call_id=call_id,
        stage=stage,
        text=text,
        done=stage == STAGE_ENDED and call.outcome is not None,
        call_outcome=call.outcome,
        entry_status=entry.status,
    )
