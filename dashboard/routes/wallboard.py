"""The supervisor's wallboard: `/wallboard` (page), `/api/wallboard` (JSON snapshot) and
`/api/wallboard/stream` (Server-Sent Events).

The database is the record; Redis adds what only the live AMI listener knows (the stage of each
call in progress, callers waiting per queue, operator states) and wakes the stream up. Every
event on `<prefix>:events` makes the stream push a fresh snapshot, debounced so a burst of
events (a call joining a queue is several) costs one query. When Redis is down the snapshot is
built from the call log alone and the stream keeps retrying Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from call_router import queries, reports
from call_router import wallboard as wb
from call_router.db import Database
from call_router.models import Call
from call_router.settings import QUEUES, Settings
from dashboard.deps import StateDep
from dashboard.i18n import render, request_language, translate
from dashboard.routes.schemas import iso_utc

router = APIRouter(tags=["wallboard"])
log = logging.getLogger(__name__)

# "The page reflects an Asterisk event within 1 s": collect a burst for at most this long.
DEBOUNCE_SECONDS = 0.25
HEARTBEAT_SECONDS = 10.0
# A snapshot even without events, so day rollover and slow drifts correct themselves.
REFRESH_SECONDS = 30.0
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)
# An overdue-callback event is an alert for this long unless the database knows better.
OVERDUE_MEMORY_SECONDS = 3600.0
# EventSource's retry after the server went away (restart): reconnect quickly.
CLIENT_RETRY_MS = 2000


@dataclass(frozen=True)
class LiveView:
    """What Redis said, or None for each part it could not say."""

    calls: dict[str, dict[str, Any]] | None = None
    waiting: dict[str, int] | None = None
    operators: dict[str, dict[str, Any]] | None = None

    @property
    def ok(self) -> bool:
        return self.calls is not None


def _keys(prefix: str) -> tuple[str, str, str, str]:
    """(channel, calls hash, queues hash, operators hash): the names LiveState writes."""
    return (
        f"{prefix}:events",
        f"{prefix}:live:calls",
        f"{prefix}:live:queues",
        f"{prefix}:live:operators",
    )


def _redis(settings: Settings) -> Redis:
    # Short timeouts: the wallboard degrades to the call log rather than hanging on Redis.
    return Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)


def _json_or_none(raw: bytes | str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def read_live(redis: Redis, prefix: str) -> LiveView:
    _, calls_key, queues_key, operators_key = _keys(prefix)
    # Two tries: after a Redis restart the pool's first connection is a dead one; the error
    # drops it and the second try connects afresh.
    for attempt in range(2):
        try:
            pipe = redis.pipeline(transaction=False)
            pipe.hgetall(calls_key)
            pipe.hgetall(queues_key)
            pipe.hgetall(operators_key)
            raw_calls, raw_queues, raw_ops = await pipe.execute()
            break
        except (RedisError, OSError):
            if attempt:
                return LiveView()
    calls = {_text(k): v for k, v in ((k, _json_or_none(v)) for k, v in raw_calls.items()) if v}
    waiting: dict[str, int] = {}
    for key, value in raw_queues.items():
        with contextlib.suppress(ValueError):
            waiting[_text(key)] = int(value)
    operators: dict[str, dict[str, Any]] = {}
    for key, value in raw_ops.items():
        # Another module owns this hash's shape; take JSON objects or a bare state string.
        parsed = _json_or_none(value)
        operators[_text(key)] = parsed if parsed is not None else {"state": _text(value)}
    return LiveView(calls=calls, waiting=waiting, operators=operators)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def queue_call(call: Call, now: datetime) -> wb.QueueCall:
    """A call-log row reduced to the figures (waits measured up to `now` if still waiting)."""
    joined = call.queue_joined_at or call.started_at
    wait: float | None = call.wait_seconds
    if wait is None:
        until = call.answered_at or call.ended_at or now
        wait = max(0.0, (until - joined).total_seconds())
    talk: float | None = call.talk_seconds
    if talk is None and call.answered_at and call.ended_at:
        talk = max(0.0, (call.ended_at - call.answered_at).total_seconds())
    return wb.QueueCall(
        queue=call.queue or "",
        answered=call.answered_at is not None,
        ended=call.ended_at is not None,
        wait_seconds=wait,
        talk_seconds=talk,
        outcome=call.outcome,
    )


def _live_calls(rows: list[Call], live: LiveView, now: datetime) -> list[wb.LiveCall]:
    by_id = {row.id: row for row in rows}
    result: list[wb.LiveCall] = []
    if live.calls is not None:
        # Redis knows which calls are still up (the listener rebuilds it after a restart).
        for entry in live.calls.values():
            row = by_id.get(entry.get("call_id"))  # type: ignore[arg-type]
            started = (row.started_at if row else None) or _parse_time(entry.get("started_at"))
            answered = (row.answered_at if row else None) or _parse_time(entry.get("answered_at"))
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
                )
            )
    else:
        for row in rows:
            if row.ended_at is not None:
                continue
            stage = wb.stage_of(row.answered_at, row.queue_joined_at)
            since = wb.stage_started(stage, row.started_at, row.queue_joined_at, row.answered_at)
            result.append(
                wb.LiveCall(
                    call_id=row.id,
                    caller_number=row.caller_number,
                    caller_name=row.caller_name,
                    stage=stage,
                    queue=row.queue,
                    operator=row.operator,
                    seconds_in_stage=wb.seconds_between(since, now),
                )
            )
    result.sort(key=lambda c: -c.seconds_in_stage)
    return result


def _operators(
    roster: list[queries.RosterEntry],
    live: LiveView,
    calls: list[wb.LiveCall],
    now: datetime,
    lang: str,
) -> list[dict[str, Any]]:
    """Operator rows. Most specific source first: the live hash (if the listener writes one),
    then a call in progress, then the desired state in the database."""

    def row(
        name: str, state: str, seconds: int | None, reason: str | None = None
    ) -> dict[str, Any]:
        label = translate(lang, f"op.{state}")
        if label == f"op.{state}":
            label = state  # a state this UI has no words for yet: show the code
        if reason:
            label = f"{label} ({reason})"
        return {"name": name, "state": state, "state_label": label, "seconds_in_state": seconds}

    # The live hash is keyed by SIP login (call_router.agents): show the roster's name for it.
    names = {entry.login: entry.name for entry in roster if entry.login}
    seen: dict[str, dict[str, Any]] = {}
    for key, entry in (live.operators or {}).items():
        name = names.get(key) or str(entry.get("name") or key)
        since = _parse_time(
            entry.get("since") or entry.get("state_since") or entry.get("changed_at")
        )
        seen[name] = row(
            name,
            str(entry.get("state") or "unknown"),
            wb.seconds_between(since, now) if since else None,
            entry.get("reason") or entry.get("pause_reason"),
        )
    for call in calls:
        if call.stage == wb.STAGE_TALKING and call.operator and call.operator not in seen:
            seen[call.operator] = row(call.operator, "talking", call.seconds_in_stage)
    for member in roster:
        if member.name not in seen:
            seconds = wb.seconds_between(member.since, now) if member.since else None
            seen[member.name] = row(member.name, member.state or "unknown", seconds, member.reason)
    return sorted(seen.values(), key=lambda op: str(op["name"]).lower())


def _alert_text(lang: str, alert: wb.Alert) -> str:
    percent = alert.kind == "service_level"
    value = round(alert.value * 100) if percent else int(alert.value)
    threshold = round(alert.threshold * 100) if percent else int(alert.threshold)
    return translate(
        lang, f"wb.alert.{alert.kind}", queue=alert.queue or "", value=value, threshold=threshold
    )


def build_snapshot(
    db: Database,
    settings: Settings,
    zone: ZoneInfo,
    live: LiveView,
    lang: str,
    *,
    overdue_events: int = 0,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The wallboard as JSON-ready values. Sync: runs in the thread pool (database I/O)."""
    now = now or datetime.now(UTC)
    since = queries.start_of_day(now, zone)
    with db.session() as session:
        # Today's figures are summed by the database; only calls still open are read as rows.
        totals = queries.queue_totals(
            session,
            since,
            now + timedelta(days=1),
            threshold=settings.service_level_seconds,
            now=now,
        )
        rows = queries.open_calls(session, now)
        roster = queries.roster(session)
        overdue_db = queries.overdue_callbacks(session, now)
        calls = _live_calls(rows, live, now)
    current_waits: dict[str, list[float]] = {}
    for call in calls:
        if call.stage == wb.STAGE_QUEUE and call.queue:
            current_waits.setdefault(call.queue, []).append(call.seconds_in_stage)
    stats = reports.queue_figures(
        totals, QUEUES, waiting=live.waiting or {}, current_waits=current_waits
    )
    found = wb.alerts(
        stats,
        service_level_target=settings.service_level_target,
        waiting_threshold=settings.wallboard_waiting_alert,
        overdue_callbacks=max(overdue_db or 0, overdue_events),
    )
    return {
        "generated_at": iso_utc(now),
        "live": live.ok,
        "service_level_seconds": settings.service_level_seconds,
        "service_level_target": settings.service_level_target,
        "queues": [asdict(s) for s in stats],
        "operators": _operators(roster, live, calls, now, lang),
        "calls": [{**asdict(c), "stage_label": translate(lang, f"stage.{c.stage}")} for c in calls],
        "alerts": [{**asdict(a), "text": _alert_text(lang, a)} for a in found],
    }


async def snapshot_for(
    request: Request, state: Any, redis: Redis, *, overdue_events: int = 0
) -> dict[str, Any]:
    settings: Settings = state.settings
    lang, _ = request_language(request, settings.default_language)
    live = await read_live(redis, settings.redis_prefix)
    return await run_in_threadpool(
        build_snapshot,
        state.db,
        settings,
        state.zone,
        live,
        lang,
        overdue_events=overdue_events,
    )


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


def _sse(event: str, data: dict[str, Any]) -> str:
    # json.dumps never emits a raw newline, so the payload is one `data:` line.
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def live_stream(
    request: Request,
    settings: Settings,
    picture: Callable[[Redis, bool], Awaitable[str]],
    *,
    relevant: Callable[[dict[str, Any]], bool] = lambda _event: True,
    refresh_seconds: float = REFRESH_SECONDS,
    debounce_seconds: float = DEBOUNCE_SECONDS,
) -> AsyncIterator[str]:
    """An SSE stream of "pictures" of the live state, for the wallboard and the operator page.

    `picture(redis, live)` renders one whole SSE message; `live` False means Redis is down, so
    the picture comes from the call log alone (flagged not live). A new picture follows every
    burst of relevant events (debounced into one), else every `refresh_seconds`; heartbeats
    keep proxies from closing an idle stream. Redis outages and restarts are survived by
    reconnecting with backoff; the picture after a (re)subscribe resyncs what was missed.
    `relevant` sees every event (also inside a burst), so it may remember things.
    """
    channel = _keys(settings.redis_prefix)[0]
    redis = _redis(settings)
    failures = 0
    try:
        yield f"retry: {CLIENT_RETRY_MS}\n\n"
        while not await request.is_disconnected():
            try:
                async with redis.pubsub() as pubsub:
                    await pubsub.subscribe(channel)
                    # Subscribed first, then the full picture: an event in between is not lost.
                    yield await picture(redis, True)
                    failures = 0
                    last_picture = last_beat = time.monotonic()
                    while not await request.is_disconnected():
                        message = await pubsub.get_message(
                            ignore_subscribe_messages=True, timeout=1.0
                        )
                        now = time.monotonic()
                        wanted = message is not None and relevant(_event_of(message))
                        if wanted:
                            # The rest of the burst (a call being answered is several events)
                            # goes into the same picture.
                            deadline = now + debounce_seconds
                            while (left := deadline - time.monotonic()) > 0:
                                more = await pubsub.get_message(
                                    ignore_subscribe_messages=True, timeout=left
                                )
                                if more is not None:
                                    relevant(_event_of(more))
                        if wanted or now - last_picture >= refresh_seconds:
                            yield await picture(redis, True)
                            last_picture = last_beat = time.monotonic()
                        elif now - last_beat >= HEARTBEAT_SECONDS:
                            yield ": heartbeat\n\n"
                            last_beat = now
                    return
            except (RedisError, OSError) as exc:
                if failures == 0:
                    # Once per outage: the picture from the call log alone, flagged not live.
                    log.warning("live stream: Redis unavailable (%s); retrying", exc)
                    yield await picture(redis, False)
                delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
                failures += 1
                yield ": redis down\n\n"
                await asyncio.sleep(delay)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await redis.aclose()


def _event_of(message: dict[str, Any]) -> dict[str, Any]:
    return _json_or_none(message.get("data") or b"") or {}


def wallboard_events(request: Request, state: Any) -> AsyncIterator[str]:
    overdue = OverdueMemory()

    def note(event: dict[str, Any]) -> bool:
        if event.get("type") == "callback_overdue":
            overdue.add(event)
        return True  # every event may change the board

    async def snapshot(redis: Redis, _live: bool) -> str:
        # snapshot_for reads Redis itself and degrades to the call log when it is down.
        return _sse(
            "snapshot",
            await snapshot_for(request, state, redis, overdue_events=overdue.count()),
        )

    return live_stream(request, state.settings, snapshot, relevant=note)


@router.get("/api/wallboard")
async def wallboard_snapshot(request: Request, state: StateDep) -> dict[str, Any]:
    redis = _redis(state.settings)
    try:
        return await snapshot_for(request, state, redis)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await redis.aclose()


@router.get("/api/wallboard/stream")
async def wallboard_stream(request: Request, state: StateDep) -> StreamingResponse:
    return StreamingResponse(
        wallboard_events(request, state),
        media_type="text/event-stream",
        # No proxy buffering (nginx honours X-Accel-Buffering), no caching of a live feed.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/wallboard", response_class=HTMLResponse, include_in_schema=False)
async def wallboard_page(request: Request, state: StateDep) -> Response:
    redis = _redis(state.settings)
    try:
        snapshot = await snapshot_for(request, state, redis)
    finally:
        with contextlib.suppress(RedisError, OSError):
            await redis.aclose()
    settings = state.settings
    return render(
        state.templates,
        request,
        "wallboard.html",
        {
            "snap": snapshot,
            "search": None,
            "sl_seconds": settings.service_level_seconds,
            "sl_target": round(settings.service_level_target * 100),
        },
        settings.default_language,
    )
