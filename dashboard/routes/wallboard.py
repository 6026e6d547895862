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
overdue-callback events are applied per request.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from redis.asyncio import Redis
from starlette.concurrency import run_in_threadpool

from call_router import (
    board_reads,
    call_search,
    call_sums,
    reports,
    request_reads,
    service_figures,
    tenant_boards,
    tenants,
)
from call_router import wallboard as wb
from call_router.db import Database
from call_router.live_state import STALE_AFTER_SECONDS
from call_router.models import Call
from call_router.settings import QUEUES, Settings
from dashboard import live_hub
from dashboard.deps import DashboardState, StateDep
from dashboard.i18n import render, request_language, translate
from dashboard.live import (
    LiveView,
    live_stream,
    parse_time,
    sse_message,
    sse_response,
)
from dashboard.live_nodes import operator_entries, read_all
from dashboard.routes.schemas import iso_utc

router = APIRouter(tags=["wallboard"])

# An overdue-callback event is an alert for this long unless the database knows better.
OVERDUE_MEMORY_SECONDS = 3600.0
# The name of the board's facts among the process's shared pictures (dashboard/live_hub.py).
WALLBOARD_PICTURE = "wallboard"

# `?tenant=SLUG` (or `centre`): narrows the board to that tenant's calls, operators and queues.
TenantParam = Annotated[str | None, Query(max_length=32)]


def _db_call(row: Call, now: datetime) -> wb.LiveCall:
    """A call in progress as the call log alone knows it."""
    stage = wb.stage_of(row.answered_at, row.queue_joined_at)
    since = wb.stage_started(stage, row.started_at, row.queue_joined_at, row.answered_at)
    return wb.LiveCall(
        call_id=row.id,
        caller_number=row.caller_number,
        caller_name=row.caller_name,
        stage=stage,
        queue=row.queue,
        operator=row.operator,
        seconds_in_stage=wb.seconds_between(since, now),
        node=row.node,
    )


def _live_calls(rows: list[Call], live: LiveView, now: datetime) -> list[wb.LiveCall]:
    by_id = {row.id: row for row in rows}
    result: list[wb.LiveCall] = []
    if live.calls is not None:
        stale_nodes = live.stale_nodes
        if stale_nodes:
            # A cluster node without a recent heartbeat: its open calls from the call log.
            result.extend(
                _db_call(row, now)
                for row in rows
                if row.ended_at is None and row.node in stale_nodes
            )
        # Redis knows which calls are still up (the listener rebuilds it after a restart).
        for entry in live.calls.values():
            row = by_id.get(entry.get("call_id"))  # type: ignore[arg-type]
            started = (row.started_at if row else None) or parse_time(entry.get("started_at"))
            answered = (row.answered_at if row else None) or parse_time(entry.get("answered_at"))
            joined = row.queue_joined_at if row else None
            stage = str(entry.get("stage") or wb.stage_of(answered, joined))
            since = wb.stage_started(stage, started or now, joined, answered)
            result.append(
                wb.LiveCall(
                    call_id=entry.get("call_id") or (row.id if row else None),
                    caller_number=str(
                        entry.get("caller_number") or (row.caller_number if row else "")
                    ),
                    caller_name=entry.get("caller_name") or (row.caller_name if row else None),
                    stage=stage,
                    queue=entry.get("queue") or (row.queue if row else None),
                    operator=entry.get("operator") or (row.operator if row else None),
                    seconds_in_stage=wb.seconds_between(since, now),
                    node=entry.get("node") or (row.node if row else None),
                )
            )
    else:
        result.extend(_db_call(row, now) for row in rows if row.ended_at is None)
    result.sort(key=lambda c: -c.seconds_in_stage)
    return result


def _operators(
    roster: list[board_reads.RosterEntry],
    live: LiveView,
    calls: list[wb.LiveCall],
    now: datetime,
    lang: str,
) -> list[dict[str, Any]]:
    """Operator rows. Most specific source first: the live hash (if the listener writes one),
    then a call in progress, then the desired state in the database."""

    cluster = bool(live.nodes)

    def row(
        name: str,
        state: str,
        seconds: int | None,
        reason: str | None = None,
        node: str | None = None,
    ) -> dict[str, Any]:
        label = translate(lang, f"op.{state}")
        if label == f"op.{state}":
            label = state  # a state this UI has no words for yet: show the code
        if reason:
            label = f"{label} ({reason})"
        shown = {"name": name, "state": state, "state_label": label, "seconds_in_state": seconds}
        # In a cluster, the node the operator is on (one box: the rows as they always were).
        return {**shown, "node": node} if cluster else shown

    # The live hash is keyed by SIP login (call_router.agents): show the roster's name for it.
    names = {entry.login: entry.name for entry in roster if entry.login}
    seen: dict[tuple[str, str | None], dict[str, Any]] = {}
    for key, entry in operator_entries(live):
        name = names.get(key) or str(entry.get("name") or key)
        since = parse_time(
            entry.get("since") or entry.get("state_since") or entry.get("changed_at")
        )
        node = entry.get("node")
        seen[(name, node)] = row(
            name,
            str(entry.get("state") or "unknown"),
            wb.seconds_between(since, now) if since else None,
            entry.get("reason") or entry.get("pause_reason"),
            node,
        )
    shown = {name for name, _node in seen}
    for call in calls:
        if call.stage == wb.STAGE_TALKING and call.operator and call.operator not in shown:
            shown.add(call.operator)
            seen[(call.operator, call.node)] = row(
                call.operator, "talking", call.seconds_in_stage, node=call.node
            )
    for member in roster:
        if member.name not in shown:
            seconds = wb.seconds_between(member.since, now) if member.since else None
            seen[(member.name, None)] = row(
                member.name, member.state or "unknown", seconds, member.reason
            )
    return sorted(seen.values(), key=lambda op: (str(op["name"]).lower(), op.get("node") or ""))


def _alert_text(lang: str, alert: wb.Alert) -> str:
    percent = alert.kind == "service_level"
    value = round(alert.value * 100) if percent else int(alert.value)
    threshold = round(alert.threshold * 100) if percent else int(alert.threshold)
    return translate(
        lang, f"wb.alert.{alert.kind}", queue=alert.queue or "", value=value, threshold=threshold
    )


def _queue_owner(queue: str, labels: dict[str, tenant_boards.QueueLabel]) -> dict[str, Any]:
    """Whose queue it is (added fields): a tenant's own (`tenant`, "Name · service") or the
    centre's (`tenant` null, the queue's name)."""
    own = labels.get(queue)
    if own is None:
        return {"tenant": None, "label": queue}
    return {"tenant": own.tenant, "label": own.label}


@dataclass(frozen=True)
class BoardFacts:
    """What the board is computed from at `now`, before any language or per-screen detail:
    the part shared by every screen of a dashboard process (see `shared_facts`)."""

    now: datetime
    live: LiveView
    totals: list[service_figures.QueueTotals]
    calls: list[wb.LiveCall]
    roster: list[board_reads.RosterEntry]
    overdue_callbacks: int
    # The target the scope is measured against (a tenant's own, else the centre's), and the
    # tenants' own queues the scope may see, labelled.
    level: tenant_boards.ServiceLevel
    own_queues: list[tenant_boards.QueueLabel]
    # Service requests past their deadline, by who must act now (dispatchers, supervisors).
    requests: request_reads.Escalated = request_reads.Escalated()


def walled_live(
    live: LiveView, rows: list[Call], roster: list[board_reads.RosterEntry]
) -> LiveView:
    """Redis's live state cut down to what a scope's database rows allow: the calls among
    `rows` (the scope's open calls), the operators on `roster` (the scope's), callers waiting
    counted from those calls. Redis holds every tenant's live state; it is not behind the ORM
    wall, so a walled board takes from it only what the wall let through."""
    if live.calls is None:
        return live
    ids = {row.id for row in rows}
    calls = {key: entry for key, entry in live.calls.items() if entry.get("call_id") in ids}
    waiting: dict[str, int] = {}
    for entry in calls.values():
        if entry.get("stage") == wb.STAGE_QUEUE and entry.get("queue"):
            queue = str(entry["queue"])
            waiting[queue] = waiting.get(queue, 0) + 1
    logins = {member.login for member in roster if member.login}
    operators = {key: entry for key, entry in (live.operators or {}).items() if key in logins}
    by_node = live.operators_by_node
    if by_node is not None:
        by_node = {
            node: {key: entry for key, entry in mine.items() if key in logins}
            for node, mine in by_node.items()
        }
    return replace(
        live, calls=calls, waiting=waiting, operators=operators, operators_by_node=by_node
    )


def gather_facts(
    db: Database,
    settings: Settings,
    zone: ZoneInfo,
    live: LiveView,
    now: datetime | None = None,
    scope: tenants.Scope = tenants.EVERYTHING,
) -> BoardFacts:
    """The database side of the board, behind `scope`'s wall. Sync: runs in the thread pool."""
    now = now or datetime.now(UTC)
    since = call_search.start_of_day(now, zone)
    centre = tenant_boards.ServiceLevel(
        settings.service_level_seconds, settings.service_level_target
    )
    with db.session() as session:
        tenants.set_scope(session, scope)
        level = tenant_boards.service_level_of(session, scope, centre)
        own_queues = tenant_boards.own_queue_labels(session)
        # Today's figures are summed by the database; only calls still open are read as rows.
        totals = call_sums.queue_totals(
            session,
            since,
            now + timedelta(days=1),
            threshold=level.seconds,
            now=now,
        )
        rows = board_reads.open_calls(session, now)
        roster = board_reads.roster(session)
        overdue_db = board_reads.overdue_callbacks(session, now)
        requests = request_reads.escalated_requests(session, now)
        if not scope.everything:
            live = walled_live(live, rows, roster)
        calls = _live_calls(rows, live, now)
    return BoardFacts(
        now, live, totals, calls, roster, overdue_db or 0, level, own_queues, requests
    )


def _call_fields(call: wb.LiveCall, cluster: bool) -> dict[str, Any]:
    fields = asdict(call)
    if not cluster:
        del fields["node"]  # one box: the rows as they always were
    return fields


def _waiting_by_node(calls: list[wb.LiveCall]) -> dict[str, dict[str, int]]:
    """Queue -> node -> callers waiting there (a cluster's queues exist on every node)."""
    counts: dict[str, dict[str, int]] = {}
    for call in calls:
        if call.stage == wb.STAGE_QUEUE and call.queue and call.node:
            mine = counts.setdefault(call.queue, {})
            mine[call.node] = mine.get(call.node, 0) + 1
    return counts


def compose_snapshot(
    facts: BoardFacts, settings: Settings, lang: str, *, overdue_events: int = 0
) -> dict[str, Any]:
    """The wallboard as JSON-ready values, in `lang`. Pure and cheap: per request."""
    calls, live, now = facts.calls, facts.live, facts.now
    cluster = bool(live.nodes)
    current_waits: dict[str, list[float]] = {}
    for call in calls:
        if call.stage == wb.STAGE_QUEUE and call.queue:
            current_waits.setdefault(call.queue, []).append(call.seconds_in_stage)
    labels = {q.queue: q for q in facts.own_queues}
    stats = reports.queue_figures(
        facts.totals,
        [*QUEUES, *labels],
        waiting=live.waiting or {},
        current_waits=current_waits,
    )
    by_node = _waiting_by_node(calls) if cluster else {}
    found = wb.alerts(
        stats,
        service_level_target=facts.level.target,
        waiting_threshold=settings.wallboard_waiting_alert,
        overdue_callbacks=max(facts.overdue_callbacks, overdue_events),
        overdue_requests=facts.requests.dispatcher,
        escalated_requests=facts.requests.supervisor,
    )
    return {
        "generated_at": iso_utc(now),
        **live.status(now),
        "service_level_seconds": facts.level.seconds,
        "service_level_target": facts.level.target,
        "queues": [
            {
                **asdict(s),
                **_queue_owner(s.queue, labels),
                # A cluster: where the callers wait (the queue's figures sum every node's).
                **({"waiting_by_node": by_node.get(s.queue, {})} if cluster else {}),
            }
            for s in stats
        ],
        "operators": _operators(facts.roster, live, calls, now, lang),
        "calls": [
            {**_call_fields(c, cluster), "stage_label": translate(lang, f"stage.{c.stage}")}
            for c in calls
        ],
        "alerts": [{**asdict(a), "text": _alert_text(lang, a)} for a in found],
    }


async def shared_facts(
    state: DashboardState,
    *,
    not_before: float | None = None,
    scope: tenants.Scope = tenants.EVERYTHING,
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


async def board_scope(state: DashboardState, tenant: str | None) -> tenants.Scope:
    """The request's wall (its principal's tenant, dashboard/deps.py) narrowed by `?tenant=`."""
    wall = tenants.current()
    if not tenant:
        return wall

    def load() -> tenants.Scope:
        with state.db.session() as session:
            return wall.narrowed(tenants.filter_scope(session, tenant))

    return await run_in_threadpool(load)


async def snapshot_for(
    request: Request,
    state: DashboardState,
    *,
    overdue_events: int = 0,
    not_before: float | None = None,
    scope: tenants.Scope = tenants.EVERYTHING,
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
    request: Request, state: DashboardState, scope: tenants.Scope = tenants.EVERYTHING
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
    if tenants.current().everything:
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
