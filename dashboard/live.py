"""The live side of the dashboard: reading the state the router keeps in Redis, Server-Sent
Events framing, and the one stream loop the live pages share (wallboard, operator page,
callback list).

The router writes (call_router/live_state.py): channel `<prefix>:events` (one JSON object per
change) and the hashes `<prefix>:live:calls|queues|operators`. In a cluster each node's router
writes under its own prefix (`<prefix>-<node>`, Settings.live_prefixes) and the pages read
them all, merged (dashboard/live_nodes.py); live pages listen on every node's channel.
The database is the record; when Redis is down every reader here says so (`LiveView.ok`
False, a picture flagged not live) and the stream keeps retrying. The hashes count only
while the router's heartbeat is recent: with it old or missing (router stopped, Asterisk
away, Redis flushed and not rebuilt yet) the view is `stale`, its numbers are left out and
pages say how old the last update is.

A stream outlives the request that opened it, so it re-checks the credential that admitted it
(dashboard/auth.py `still_admitted`) every SESSION_CHECK_SECONDS and before every picture it
pushes after an event: signing out, a session expiring or an account being disabled ends the
stream within that time (with an `ended` event, so the page can say why).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from redis.asyncio import Redis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from call_router.live_state import STALE_AFTER_SECONDS
from call_router.models import as_utc
from call_router.settings import Settings
from dashboard import auth
from dashboard.deps import DashboardState

log = logging.getLogger(__name__)

# "The page reflects an Asterisk event within 1 s": collect a burst for at most this long.
DEBOUNCE_SECONDS = 0.25
HEARTBEAT_SECONDS = 10.0
# A picture even without events, so day rollover and slow drifts correct themselves.
REFRESH_SECONDS = 30.0
RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0)
# EventSource's retry after the server went away (restart): reconnect quickly.
CLIENT_RETRY_MS = 2000
# How long a signed-out (expired, disabled) session may keep a stream open at most.
SESSION_CHECK_SECONDS = 15.0
# The SSE event that says the stream ended because its sign-in no longer holds.
EVENT_ENDED = "ended"

Picture = Callable[[Redis, bool], Awaitable[str]]


@dataclass(frozen=True)
class LiveView:
    """What Redis said, or None for each part it could not say."""

    calls: dict[str, dict[str, Any]] | None = None
    waiting: dict[str, int] | None = None
    operators: dict[str, dict[str, Any]] | None = None
    # When the router last vouched for the hashes (its heartbeat), if known.
    updated_at: datetime | None = None
    # The hashes cannot be trusted now (Redis down, or no recent heartbeat).
    stale: bool = False
    # Redis answered (False: down, so nothing could be read at all).
    reachable: bool = True
    # A cluster's nodes, in settings order (empty on one box): whose state this merges.
    nodes: tuple[NodeLive, ...] = ()
    # Operators as each live node sees them (node -> login -> entry); `operators` holds, per
    # login, the entry of the node where the operator is present (see `merge_nodes`).
    operators_by_node: dict[str, dict[str, dict[str, Any]]] | None = None

    @property
    def ok(self) -> bool:
        return self.calls is not None

    @property
    def stale_nodes(self) -> frozenset[str]:
        """The nodes whose live state is left out (no recent heartbeat): their open calls
        come from the call log."""
        return frozenset(n.node for n in self.nodes if not n.live)

    def status(self, now: datetime) -> dict[str, Any]:
        """What every page and API says about live data: live, stale, and since when."""
        age = (
            None
            if self.updated_at is None
            else max(0, int((now - self.updated_at).total_seconds()))
        )
        status: dict[str, Any] = {
            "live": self.ok,
            "stale": self.stale,
            "live_updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "live_age_seconds": age,
            "redis": self.reachable,
        }
        if self.nodes:
            status["nodes"] = [node.status(now) for node in self.nodes]
        return status


@dataclass(frozen=True)
class NodeLive:
    """One cluster node's part of a merged view: whether its state counts, and since when."""

    node: str
    live: bool
    updated_at: datetime | None

    def status(self, now: datetime) -> dict[str, Any]:
        age = (
            None
            if self.updated_at is None
            else max(0, int((now - self.updated_at).total_seconds()))
        )
        return {
            "node": self.node,
            "live": self.live,
            "live_updated_at": self.updated_at.isoformat() if self.updated_at else None,
            "live_age_seconds": age,
        }


@dataclass(frozen=True)
class LiveKeys:
    """The names call_router.live_state.LiveState writes under a prefix."""

    events: str
    calls: str
    queues: str
    operators: str
    heartbeat: str

    @classmethod
    def of(cls, prefix: str) -> LiveKeys:
        return cls(
            events=f"{prefix}:events",
            calls=f"{prefix}:live:calls",
            queues=f"{prefix}:live:queues",
            operators=f"{prefix}:live:operators",
            heartbeat=f"{prefix}:live:heartbeat",
        )


def connect(settings: Settings) -> Redis:
    # Short timeouts: a page degrades to the call log rather than hanging on Redis.
    return Redis.from_url(settings.redis_url, socket_timeout=2, socket_connect_timeout=1)


def json_object(raw: bytes | str) -> dict[str, Any] | None:
    """A JSON object, or None for anything else (another writer's garbage never raises)."""
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def event_channels(settings: Settings) -> list[str]:
    """Every channel a live page listens on: the installation's own (callback changes the
    dashboard and the CLI publish) and, in a cluster, each node's (its router's events)."""
    channels = [LiveKeys.of(settings.redis_prefix).events]
    for node, prefix in settings.live_prefixes().items():
        if node is not None:
            channels.append(LiveKeys.of(prefix).events)
    return channels


async def fetch_live(redis: Redis, prefixes: list[str]) -> list[Any] | None:
    """The four live keys of every prefix, in one round trip; None when Redis is down."""
    # Two tries: after a Redis restart the pool's first connection is a dead one; the error
    # drops it and the second try connects afresh.
    for attempt in range(2):
        try:
            pipe = redis.pipeline(transaction=False)
            for prefix in prefixes:
                keys = LiveKeys.of(prefix)
                pipe.hgetall(keys.calls)
                pipe.hgetall(keys.queues)
                pipe.hgetall(keys.operators)
                pipe.get(keys.heartbeat)
            return list(await pipe.execute())
        except (RedisError, OSError):
            if attempt:
                return None
    return None


async def read_live(redis: Redis, prefix: str, now: datetime | None = None) -> LiveView:
    """The live state under one prefix (one box, or one node)."""
    replies = await fetch_live(redis, [prefix])
    if replies is None:
        return LiveView(stale=True, reachable=False)
    return live_view_of(*replies, now=now or datetime.now(UTC))


def live_view_of(
    raw_calls: dict[Any, Any],
    raw_queues: dict[Any, Any],
    raw_ops: dict[Any, Any],
    raw_beat: bytes | str | None,
    *,
    now: datetime,
) -> LiveView:
    updated_at = parse_time(_text(raw_beat)) if raw_beat else None
    if updated_at is None or (now - updated_at).total_seconds() > STALE_AFTER_SECONDS:
        # Old numbers are worse than none: the pages fall back to the call log.
        return LiveView(updated_at=updated_at, stale=True)
    calls = {_text(k): v for k, v in ((k, json_object(v)) for k, v in raw_calls.items()) if v}
    waiting: dict[str, int] = {}
    for key, value in raw_queues.items():
        with contextlib.suppress(ValueError):
            waiting[_text(key)] = int(value)
    operators: dict[str, dict[str, Any]] = {}
    for key, value in raw_ops.items():
        # Another module owns this hash's shape; take JSON objects or a bare state string.
        parsed = json_object(value)
        operators[_text(key)] = parsed if parsed is not None else {"state": _text(value)}
    return LiveView(calls=calls, waiting=waiting, operators=operators, updated_at=updated_at)


def parse_time(value: Any) -> datetime | None:
    """A time as the router writes it (ISO text or a Unix time), aware; None if unreadable."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return as_utc(parsed)


def sse_message(event: str, data: dict[str, Any]) -> str:
    """One Server-Sent Event. json.dumps never emits a raw newline: one `data:` line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


def sse_response(stream: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        # No proxy buffering (nginx honours X-Accel-Buffering), no caching of a live feed.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def event_of(message: dict[str, Any]) -> dict[str, Any]:
    """The event object of a pub/sub message ({} when it is not one)."""
    return json_object(message.get("data") or b"") or {}


async def live_stream(
    request: Request,
    state: DashboardState,
    picture: Picture,
    *,
    relevant: Callable[[dict[str, Any]], bool] = lambda _event: True,
    refresh_seconds: float = REFRESH_SECONDS,
    debounce_seconds: float = DEBOUNCE_SECONDS,
) -> AsyncIterator[str]:
    """An SSE stream of "pictures" of the live state, for every live page.

    `picture(redis, live)` renders one whole SSE message; `live` False means Redis is down, so
    the picture comes from the database alone (flagged not live). A new picture follows every
    burst of relevant events (debounced into one), else every `refresh_seconds`; heartbeats
    keep proxies from closing an idle stream. Redis outages and restarts are survived by
    reconnecting with backoff; the picture after a (re)subscribe resyncs what was missed.
    `relevant` sees every event (also inside a burst), so it may remember things.
    The stream ends when the sign-in that opened it no longer holds (see the module doc).
    """
    channels = event_channels(state.settings)
    # The process's client: the subscription holds one connection of its pool while it lasts.
    redis = state.live.redis
    failures = 0
    last_check = time.monotonic()

    async def admitted() -> bool:
        nonlocal last_check
        last_check = time.monotonic()
        return bool(await run_in_threadpool(auth.still_admitted, request, state.db))

    ended = sse_message(EVENT_ENDED, {"reason": "signed_out"})
    yield f"retry: {CLIENT_RETRY_MS}\n\n"
    while not await request.is_disconnected():
        try:
            async with redis.pubsub() as pubsub:
                await pubsub.subscribe(*channels)
                # Subscribed first, then the full picture: an event in between is not lost.
                yield await picture(redis, True)
                failures = 0
                last_picture = last_beat = time.monotonic()
                while not await request.is_disconnected():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    now = time.monotonic()
                    wanted = message is not None and relevant(event_of(message))
                    if wanted:
                        # The rest of the burst (a call being answered is several events)
                        # goes into the same picture.
                        deadline = now + debounce_seconds
                        while (left := deadline - time.monotonic()) > 0:
                            more = await pubsub.get_message(
                                ignore_subscribe_messages=True, timeout=left
                            )
                            if more is not None:
                                relevant(event_of(more))
                    due = wanted or now - last_picture >= refresh_seconds
                    if (due or now - last_check >= SESSION_CHECK_SECONDS) and not (
                        await admitted()
                    ):
                        yield ended
                        return
                    if due:
                        yield await picture(redis, True)
                        last_picture = last_beat = time.monotonic()
                    elif now - last_beat >= HEARTBEAT_SECONDS:
                        yield ": heartbeat\n\n"
                        last_beat = now
                return
        except (RedisError, OSError) as exc:
            if failures == 0:
                # Once per outage: the picture from the database alone, flagged not live.
                log.warning("live stream: Redis unavailable (%s); retrying", exc)
                yield await picture(redis, False)
            delay = RECONNECT_DELAYS[min(failures, len(RECONNECT_DELAYS) - 1)]
            failures += 1
            yield ": redis down\n\n"
            await asyncio.sleep(delay)
            if time.monotonic() - last_check >= SESSION_CHECK_SECONDS and not (await admitted()):
                yield ended
                return
