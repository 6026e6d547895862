"""The supervisor's wallboard: `/wallboard` (page), `/api/wallboard` (JSON snapshot) and
`/api/wallboard/stream` (Server-Sent Events).

The database is the record; Redis adds what only the live AMI listener knows (the stage of each
call in progress, callers waiting per queue, operator states) and wakes the stream up. Every
event on `<prefix>:events` makes the stream push a fresh snapshot, debounced so a burst of
events (a call joining a queue is several) costs one query. When Redis is down the snapshot is
built from the call log alone and the stream keeps retrying Redis.

Many screens show the same board: its facts (the SQL sums and the live state) are computed
once per process for all of them and reused until the next event or for at most a second
(`shared_facts`, dashboard/live_hub.py); only the language and the screen's own memory of
overdue-callback events are applied per request. The facts and the snapshot's composition are
dashboard/routes/wallboard_facts.py.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from call_router import tenant_wall, tenants
from call_router.live_state import STALE_AFTER_SECONDS
from call_router.settings import QUEUES
from dashboard import live_hub
from dashboard.deps import DashboardState, StateDep
from dashboard.i18n import render, request_language
from dashboard.live import (
    live_stream,
    sse_message,
    sse_response,
)
from dashboard.live_nodes import read_all
from dashboard.routes.wallboard_facts import BoardFacts, compose_snapshot, gather_facts

router = APIRouter(tags=["wallboard"])

# An overdue-callback event is an alert for this long unless the database knows better.
OVERDUE_MEMORY_SECONDS = 3600.0
# The name of the board's facts among the process's shared pictures (dashboard/live_hub.py).
WALLBOARD_PICTURE = "wallboard"

# `?tenant=SLUG` (or `centre`): narrows the board to that tenant's calls, operators and queues.
TenantParam = Annotated[str | None, Query(max_length=32)]


async def shared_facts(
    state: DashboardState,
    *,
    not_before: float | None = None,
    scope: tenant_wall.Scope = tenant_wall.EVERYTHING,
) -> BoardFacts:
    """The board's facts, computed once per process for every screen of the same `scope`
    asking at the same time and reused until the next live event or for at most a second
    (dashboard/live_hub.py). `not_before`: a moment (live_hub.clock) the facts must have been
    read after."""
    settings = state.settings

    async def compute() -> BoardFacts:
        # read_live degrades to "not live" when Redis is down; the call log still answers.
        live = await read_all(state.live.redis, settings)
        return await run_in_threadpool(
            gather_facts, state.db, settings, state.zone, live, None, scope
        )

    # One picture per scope: a tenant's board is never another's (nor the centre's).
    name = WALLBOARD_PICTURE if scope.everything else f"{WALLBOARD_PICTURE}:{scope}"
    facts = await state.live.picture(name).get(compute, not_before=not_before)
    assert isinstance(facts, BoardFacts)
    return facts


async def board_scope(state: DashboardState, tenant: str | None) -> tenant_wall.Scope:
    """The request's wall (its principal's tenant, dashboard/deps.py) narrowed by `?tenant=`."""
    wall = tenant_wall.current()
    if not tenant:
        return wall

    def load() -> tenant_wall.Scope:
        with state.db.session() as session:
            return wall.narrowed(tenant_wall.filter_scope(session, tenant))

    return await run_in_threadpool(load)


async def snapshot_for(
    request: Request,
    state: DashboardState,
    *,
    overdue_events: int = 0,
    not_before: float | None = None,
    scope: tenant_wall.Scope = tenant_wall.EVERYTHING,
) -> dict[str, Any]:
    settings = state.settings
    lang, _ = request_language(request, settings.default_language)
    facts = await shared_facts(state, not_before=not_before, scope=scope)
    if not scope.everything:
        # Overdue-callback events from Redis are every tenant's: a walled board counts only
        # the overdue callbacks its database rows show.
        overdue_events = 0
    return compose_snapshot(facts, settings, lang, overdue_events=overdue_events)


class OverdueMemory:
    """`callback_overdue` events seen by this stream, forgotten after a while."""

    def __init__(self) -> None:
        self._seen: dict[str, float] = {}

    def add(self, event: dict[str, Any]) -> None:
        key = str(
            event.get("callback_id") or event.get("id") or event.get("caller_number") or event
        )
        self._seen[key] = time.monotonic()

    def count(self) -> int:
        cutoff = time.monotonic() - OVERDUE_MEMORY_SECONDS
        self._seen = {k: at for k, at in self._seen.items() if at >= cutoff}
        return len(self._seen)


def wallboard_events(
    request: Request, state: DashboardState, scope: tenant_wall.Scope = tenant_wall.EVERYTHING
) -> AsyncIterator[str]:
    overdue = OverdueMemory()
    # When this stream last saw an event it has not pushed a picture for yet: the next
    # picture must have been read after it (another screen's may be shared if it was).
    unseen_since: float | None = None

    def note(event: dict[str, Any]) -> bool:
        nonlocal unseen_since
        if unseen_since is None:
            unseen_since = live_hub.clock()
        if event.get("type") == "callback_overdue":
            overdue.add(event)
        return True  # every event may change the board

    async def snapshot(_redis: Redis, _live: bool) -> str:
        nonlocal unseen_since
        # Without an event (the first picture after (re)subscribing, the periodic refresh)
        # the picture must be read from now on: nothing tells what the stream missed.
        not_before = unseen_since if unseen_since is not None else live_hub.clock()
        unseen_since = None
        return sse_message(
            "snapshot",
            await snapshot_for(
                request, state, overdue_events=overdue.count(), not_before=not_before, scope=scope
            ),
        )

    # A stopped router sends no events: refresh often enough that the board soon says its
    # live data went stale (the shared picture keeps this cheap for many screens).
    return live_stream(request, state, snapshot, relevant=note, refresh_seconds=STALE_AFTER_SECONDS)


@router.get("/api/wallboard")
async def wallboard_snapshot(
    request: Request, state: StateDep, tenant: TenantParam = None
) -> dict[str, Any]:
    return await snapshot_for(request, state, scope=await board_scope(state, tenant))


@router.get("/api/wallboard/stream")
async def wallboard_stream(
    request: Request, state: StateDep, tenant: TenantParam = None
) -> StreamingResponse:
    return sse_response(wallboard_events(request, state, await board_scope(state, tenant)))


@router.get("/wallboard", response_class=HTMLResponse, include_in_schema=False)
async def wallboard_page(request: Request, state: StateDep, tenant: TenantParam = None) -> Response:
    snapshot = await snapshot_for(request, state, scope=await board_scope(state, tenant))
    settings = state.settings
    choices: list[str] = []
    if tenant_wall.current().everything:
        # The filter's choices: only the centre's staff may know every tenant's slug.

        def load() -> list[str]:
            with state.db.session() as session:
                return [t.slug for t in tenants.list_tenants(session)]

        choices = await run_in_threadpool(load)
    return render(
        state.templates,
        request,
        "wallboard.html",
        {
            "snap": snapshot,
            "search": None,
            "tenant": tenant or "",
            "tenant_choices": choices,
            "sl_seconds": snapshot["service_level_seconds"],
            "sl_target": round(snapshot["service_level_target"] * 100),
            # Supervisors' "move everyone waiting" form (dashboard/routes/api_control.py).
            "control_queues": QUEUES,
        },
        settings.default_language,
    )
