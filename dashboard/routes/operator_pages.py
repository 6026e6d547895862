"""The operator's work page: `/operator` (their queue state, the screen-pop of the call they
are on, the disposition form) and its live feed `/api/operator/stream` (Server-Sent Events).

The page changes state through the JSON APIs (api_agents, api_dispositions); this module only
reads. Live: every event on `<prefix>:events` that concerns this operator (their state, a call
naming them, their current call) pushes the panels again, rendered by the same Jinja partials
as the first page load, so caller data is escaped by one autoescaping renderer everywhere.

Who the operator is: `acting_operator_login` (until accounts link a user to a roster login,
the page is told with `?operator=LOGIN`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from call_router import board_reads, callback_policy, screen_pop, tenant_wall, tenants
from call_router.agent_models import AgentState
from call_router.agent_store import desired_agents
from call_router.models import Call, Operator, utcnow
from call_router.request_lifecycle import load_categories
from call_router.screen_pop import OperatorIdentity
from dashboard.deps import DashboardState, StateDep
from dashboard.i18n import render, request_language, translate
from dashboard.live import (
    LiveView,
    live_stream,
    parse_time,
    sse_message,
    sse_response,
)
from dashboard.live_nodes import read_all

router = APIRouter(include_in_schema=False)

LOGIN = r"^[A-Za-z0-9_.@+-]{1,64}$"
OperatorParam = Annotated[str | None, Query(max_length=64)]
# Pause reasons offered on the page (sent to /api/agents/{login}/pause as the reason code).
PAUSE_REASONS = ("break", "lunch", "after_call_work", "training", "meeting", "technical")
DEBOUNCE_SECONDS = 0.2  # a burst of events (a call being answered is several): one push
# Pushes even without events: the talk timer and "since" stay roughly right, drift corrects.
REFRESH_SECONDS = 15.0
FULL = "%Y-%m-%d %H:%M"


def acting_operator_login(request: Request, operator: str | None) -> str | None:
    """The roster login this page works for: an operator's (account or token) linked login,
    None if it is linked to nobody; a supervisor (who may act for anyone) is told which by
    `?operator=LOGIN`. The one place that decides it."""
    principal = getattr(request.state, "principal", None)
    if not getattr(principal, "is_supervisor", False):
        linked = getattr(principal, "operator_login", None)
        return str(linked) if linked else None
    login = (operator or "").strip()
    return login or None


@dataclass(frozen=True)
class OperatorView:
    """The values the operator page's partials render (see templates/partials/operator_*)."""

    who: OperatorIdentity
    agent: dict[str, Any]
    call: dict[str, Any] | None
    last_call: dict[str, Any] | None
    live: bool
    generated_at: datetime
    # Live data cannot be trusted now; how old its last update is (None: unknown).
    stale: bool = False
    live_age_seconds: int | None = None
    redis: bool = True
    # The screen-pop's "company" choice (slug, name): the centre's staff, for a call that is
    # still the centre's (it arrived unknown); empty otherwise (dashboard/routes/call_company.py).
    companies: tuple[tuple[str, str], ...] = ()


# --- reading ----------------------------------------------------------------------------------


def _agent(
    session: Session, who: OperatorIdentity, live: LiveView, now: datetime, lang: str
) -> dict[str, Any]:
    """Desired state (database) and, when the router published it, the actual one (Redis)."""
    desired = next((a for a in desired_agents(session)[0] if a.login == who.login), None)
    row = session.scalar(select(AgentState).where(AgentState.sip_login == who.login))
    op = session.scalar(select(Operator).where(Operator.sip_login == who.login))
    skills = [s.queue for s in op.skills] if op is not None else []
    actual = (live.operators or {}).get(who.login)
    if actual is not None:
        state = str(actual.get("state") or "unknown")
        since = parse_time(actual.get("since"))
        queues = [str(q) for q in actual.get("queues") or []]
    else:
        state = "logged_out" if desired is None else "paused" if desired.paused else "unknown"
        since = row.since if row is not None else None
        queues = sorted(desired.queues) if desired is not None else []
    reason = desired.reason if desired is not None and desired.paused else None
    return {
        "state": state,
        "state_label": _label(lang, "op", state),
        "since": since,
        "seconds_in_state": max(0, int((now - since).total_seconds())) if since else None,
        "logged_in": desired is not None,
        "paused": bool(desired and desired.paused),
        "pause_reason": reason,
        "pause_label": _label(lang, "pause", reason) if reason else None,
        "queues": queues,
        "desired_queues": sorted(desired.queues) if desired is not None else [],
        "skills": skills,
        # In a cluster: the node the operator's phone is registered on (None: one box).
        "node": actual.get("node") if actual is not None else None,
    }


def _screen_pop(session: Session, call: Call, now: datetime) -> dict[str, Any]:
    previous = screen_pop.previous_calls(session, call.caller_number, exclude=call.id)
    entries = screen_pop.open_callbacks(session, call.caller_number, closed_since=call.started_at)
    return {
        "call": call,
        "wait_seconds": screen_pop.wait_seconds(call),
        "talk_seconds": (
            max(0, int((now - call.answered_at).total_seconds())) if call.answered_at else None
        ),
        "previous": previous,
        "callbacks": [
            {"entry": e, "overdue": callback_policy.is_overdue(e.due_at, now)} for e in entries
        ],
    }


def _last_call(session: Session, call: Call | None) -> dict[str, Any] | None:
    if call is None:
        return None
    return {"call": call, "disposition": board_reads.disposition_of(session, call.id)}


def operator_view(
    state: DashboardState, who: OperatorIdentity, live: LiveView, lang: str, now: datetime
) -> OperatorView:
    """Sync (database I/O): run in the thread pool."""
    live_ids = set(live.calls) if live.calls is not None else None
    with state.db.session() as session:
        current = screen_pop.current_call(session, who, now, live_ids)
        companies: tuple[tuple[str, str], ...] = ()
        if current is not None and current.tenant_id is None and tenant_wall.current().everything:
            companies = tuple((t.slug, t.name) for t in tenants.list_tenants(session))
        return OperatorView(
            who=who,
            agent=_agent(session, who, live, now, lang),
            call=_screen_pop(session, current, now) if current is not None else None,
            last_call=_last_call(session, current or screen_pop.last_call(session, who)),
            live=live.ok,
            generated_at=now,
            stale=live.stale,
            live_age_seconds=live.status(now)["live_age_seconds"],
            redis=live.reachable,
            companies=companies,
        )


def panels(
    state: DashboardState, request: Request, view: OperatorView, lang: str
) -> dict[str, Any]:
    """The live parts of the page as escaped HTML plus the disposition form's target."""
    context = {"request": request, "lang": lang, "view": view, "FULL": FULL}
    env = state.templates.env
    last = view.last_call
    disposition = last["disposition"] if last else None
    return {
        "generated_at": view.generated_at.isoformat(),
        "live": view.live,
        "stale": view.stale,
        "live_age_seconds": view.live_age_seconds,
        "agent_html": env.get_template("partials/operator_agent.html").render(context),
        "call_html": env.get_template("partials/operator_call.html").render(context),
        "call_id": view.call["call"].id if view.call else None,
        "linkedid": view.call["call"].linkedid if view.call else None,
        "last_call": (
            {
                "id": last["call"].id,
                "caller_number": last["call"].caller_number,
                "started_at": _local(last["call"].started_at, state, FULL),
                "category": disposition.category if disposition else None,
                "note": disposition.note if disposition else None,
                "callout_created": bool(disposition and disposition.callout_created),
            }
            if last
            else None
        ),
    }


# --- the page -------------------------------------------------------------------------------


def _identity(session: Session, login: str | None) -> OperatorIdentity | None:
    if login is None:
        return None
    who = screen_pop.operator_identity(session, login)
    if who is None:
        raise HTTPException(404, detail=f"no operator with login {login!r}")
    return who


@router.get("/operator", response_class=HTMLResponse)
async def operator_page(
    request: Request, state: StateDep, operator: OperatorParam = None
) -> Response:
    settings = state.settings
    lang, _ = request_language(request, settings.default_language)
    login = acting_operator_login(request, operator)

    def load() -> tuple[OperatorIdentity | None, list[board_reads.RosterEntry]]:
        with state.db.session() as session:
            return _identity(session, login), board_reads.roster(session)

    who, roster = await run_in_threadpool(load)
    context: dict[str, Any] = {
        "search": None,
        "who": who,
        "roster": roster,
        "pause_reasons": PAUSE_REASONS,
        "categories": list(settings.disposition_categories),
        "request_categories": load_categories(),
        "FULL": FULL,
    }
    if who is not None:
        live = await read_all(state.live.redis, settings)
        view = await run_in_threadpool(operator_view, state, who, live, lang, utcnow())
        context["view"] = view
    return render(state.templates, request, "operator.html", context, settings.default_language)


# --- live --------------------------------------------------------------------------------------


def concerns(event: dict[str, Any], who: OperatorIdentity, linkedid: str | None) -> bool:
    """Whether a live event may change this operator's page."""
    if event.get("type") in ("resync", "operators"):
        return True
    if event.get("login") == who.login or event.get("operator") in who.names:
        return True
    return linkedid is not None and event.get("linkedid") == linkedid


def operator_events(
    request: Request, state: DashboardState, who: OperatorIdentity, lang: str
) -> AsyncIterator[str]:
    """Panels now, then again after every event about this operator or their call."""
    linkedid: str | None = None

    async def panels_now(redis: Redis, live: bool) -> str:
        nonlocal linkedid
        view_of_redis = await read_all(redis, state.settings) if live else LiveView()
        view = await run_in_threadpool(operator_view, state, who, view_of_redis, lang, utcnow())
        data = panels(state, request, view, lang)
        linkedid = data["linkedid"]
        return sse_message("panels", data)

    return live_stream(
        request,
        state,
        panels_now,
        relevant=lambda event: concerns(event, who, linkedid),
        refresh_seconds=REFRESH_SECONDS,
        debounce_seconds=DEBOUNCE_SECONDS,
    )


@router.get("/api/operator/stream")
async def operator_stream(
    request: Request, state: StateDep, operator: OperatorParam = None
) -> StreamingResponse:
    login = acting_operator_login(request, operator)
    if login is None:
        raise HTTPException(422, detail="which operator? (?operator=LOGIN)")

    def load() -> OperatorIdentity | None:
        with state.db.session() as session:
            return _identity(session, login)

    who = await run_in_threadpool(load)
    assert who is not None
    lang, _ = request_language(request, state.settings.default_language)
    return sse_response(operator_events(request, state, who, lang))


# --- small helpers -------------------------------------------------------------------------


def _label(lang: str, group: str, code: str) -> str:
    text = translate(lang, f"{group}.{code}")
    return code if text == f"{group}.{code}" else text


def _local(value: datetime | None, state: DashboardState, fmt: str) -> str:
    return value.astimezone(state.zone).strftime(fmt) if value is not None else "—"
