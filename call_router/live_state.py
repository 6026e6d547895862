"""Live view of the hotline in Redis, for the dashboard's wallboard.

- channel `<prefix>:events`: one JSON object per change ({"type": ..., ...});
- hash `<prefix>:live:calls`: linkedid → JSON of each call in progress (stage menu/queue/talking);
- hash `<prefix>:live:queues`: queue → number of callers waiting;
- hashes `<prefix>:live:operators` (login → state) and `<prefix>:live:queue_agents`
  (queue → operators free/busy/paused/offline), kept by the router from queue member events.
- events `{"type": "callback", "action": ..., "callback_id": ..., "operator": ...}` after every
  committed change to the callback list, whichever process made it (`CallbackPublisher`);
- `<prefix>:live:heartbeat`: when the router last vouched for the hashes (ISO time, written
  every few seconds while it is connected to Asterisk); readers call the hashes stale without
  a recent one. `<prefix>:live:epoch`: set when the hashes were rebuilt; gone after a flush or
  a Redis restart, which makes the router rebuild them.

Every key expires (LIVE_TTL, refreshed by the heartbeat), so the keys of an installation that
is gone do not linger; the router replaces the operator hash with its roster at start, so no
one else's operators show up under its prefix.

Redis is a convenience, the database is the record: when Redis is down every method logs a
(rate-limited) warning and returns; redis-py reconnects by itself on the next command.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import redis as sync_redis
import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from call_router import callbacks
from call_router.call_log_core import CallView
from call_router.db import Database

STAGE_MENU = "menu"
STAGE_QUEUE = "queue"
STAGE_TALKING = "talking"
# The router refreshes the heartbeat this often, and every key's expiry with it.
HEARTBEAT_SECONDS = 2.0
# Live keys outlive their writer by this much (a stopped installation's keys go away).
LIVE_TTL_SECONDS = 600
# The dashboard calls live data stale when the heartbeat is older than this.
STALE_AFTER_SECONDS = 10.0

log = structlog.get_logger(__name__)


class LiveState:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        warn_every: float = 30.0,
        retry_after: float = 5.0,
    ) -> None:
        self._redis = redis
        self.channel = f"{prefix}:events"
        self.calls_key = f"{prefix}:live:calls"
        self.queues_key = f"{prefix}:live:queues"
        self.operators_key = f"{prefix}:live:operators"
        self.queue_agents_key = f"{prefix}:live:queue_agents"
        self.heartbeat_key = f"{prefix}:live:heartbeat"
        self.epoch_key = f"{prefix}:live:epoch"
        self._monotonic = monotonic
        self._warn_every = warn_every
        self._retry_after = retry_after
        self._last_warning: float | None = None
        self._failures_since_warning = 0
        self._last_failure: float | None = None
        # Set when Redis comes back after an outage: the hashes missed updates, rebuild them.
        self.resync_needed = False

    @classmethod
    def from_url(cls, url: str, prefix: str) -> LiveState:
        # Short timeouts: a hung Redis must not stall the event consumer.
        redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        return cls(redis, prefix)

    async def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            await self._redis.aclose()

    # --- calls -------------------------------------------------------------------

    async def call_stage(self, call: CallView, stage: str, **extra: Any) -> bool:
        """The call is now in `stage`; store it and tell subscribers."""
        state = {**_call_json(call), "stage": stage, **extra}
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self.calls_key, call.linkedid, json.dumps(state, ensure_ascii=False))
        pipe.publish(self.channel, _event("call_" + stage, state))
        return await self._run(pipe.execute(), "call_stage")

    async def call_ended(self, call: CallView) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hdel(self.calls_key, call.linkedid)
        pipe.publish(self.channel, _event("call_ended", _call_json(call)))
        return await self._run(pipe.execute(), "call_ended")

    async def queue_waiting(self, queue: str, waiting: int) -> bool:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self.queues_key, queue, max(0, waiting))
        pipe.publish(self.channel, _event("queue", {"queue": queue, "waiting": max(0, waiting)}))
        return await self._run(pipe.execute(), "queue_waiting")

    # --- operators (call_router.agents computes the values) ----------------------------

    async def operator_state(self, login: str, state: dict[str, Any]) -> bool:
        """Hash `<prefix>:live:operators`: login → JSON {state, since, paused, reason, ...}."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.hset(self.operators_key, login, json.dumps(state, ensure_ascii=False, default=str))
        pipe.publish(self.channel, _event("operator", {"login": login, **state}))
        return await self._run(pipe.execute(), "operator_state")

    async def queue_agents(self, counts: dict[str, dict[str, int]]) -> bool:
        """Hash `<prefix>:live:queue_agents`: queue → JSON {free, busy, paused, offline}."""
        if not counts:
            return True
        mapping: dict[EncodableT, EncodableT] = {q: json.dumps(c) for q, c in counts.items()}
        return await self._run(
            self._redis.hset(self.queue_agents_key, mapping=mapping), "queue_agents"
        )

    async def operators(self) -> dict[str, dict[str, Any]]:
        raw = await self._redis.hgetall(self.operators_key)
        return {_text(k): json.loads(v) for k, v in raw.items()}

    async def replace_operators(
        self, states: dict[str, dict[str, Any]], counts: dict[str, dict[str, int]]
    ) -> bool:
        """Both operator hashes from the truth (roster + Asterisk): nobody else is left."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self.operators_key, self.queue_agents_key)
        if states:
            pipe.hset(
                self.operators_key,
                mapping={
                    login: json.dumps(state, ensure_ascii=False, default=str)
                    for login, state in states.items()
                },
            )
        if counts:
            pipe.hset(self.queue_agents_key, mapping={q: json.dumps(c) for q, c in counts.items()})
        for key in (self.operators_key, self.queue_agents_key):
            pipe.expire(key, LIVE_TTL_SECONDS)
        pipe.publish(self.channel, _event("operators", {"operators": len(states)}))
        return await self._run(pipe.execute(), "replace_operators")

    async def heartbeat(self, at: datetime) -> bool:
        """Vouch for the hashes now and keep every key from expiring. If the hashes were
        never rebuilt in this Redis (flushed, restarted empty), `resync_needed` is set."""
        pipe = self._redis.pipeline(transaction=False)
        pipe.set(self.heartbeat_key, at.isoformat(), ex=LIVE_TTL_SECONDS)
        pipe.exists(self.epoch_key)
        for key in self._live_keys():
            pipe.expire(key, LIVE_TTL_SECONDS)
        ok, replies = await self._try(pipe.execute(), "heartbeat")
        if ok and not replies[1]:
            self.resync_needed = True
        return ok

    def _live_keys(self) -> tuple[str, ...]:
        return (
            self.calls_key,
            self.queues_key,
            self.operators_key,
            self.queue_agents_key,
            self.epoch_key,
        )

    async def publish(self, kind: str, payload: dict[str, Any]) -> bool:
        """A timeline event that changes no live hash (ring, transfer, callback)."""
        return await self._run(self._redis.publish(self.channel, _event(kind, payload)), "publish")

    async def replace_all(
        self, calls: Iterable[tuple[CallView, str]], waiting: dict[str, int]
    ) -> bool:
        """Rebuild both hashes from the truth (after the listener reconnects)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.delete(self.calls_key, self.queues_key)
        mapping: dict[EncodableT, EncodableT] = {
            call.linkedid: json.dumps({**_call_json(call), "stage": stage}, ensure_ascii=False)
            for call, stage in calls
        }
        if mapping:
            pipe.hset(self.calls_key, mapping=mapping)
        if waiting:
            pipe.hset(self.queues_key, mapping=waiting)  # type: ignore[arg-type]
        pipe.set(self.epoch_key, _iso(datetime.now(UTC)) or "")
        for key in self._live_keys():
            pipe.expire(key, LIVE_TTL_SECONDS)
        pipe.publish(self.channel, _event("resync", {"calls": len(mapping)}))
        done = await self._run(pipe.execute(), "replace_all")
        if done:
            self.resync_needed = False
        return done

    # --- reads (dashboard, tests) ---------------------------------------------------

    async def calls(self) -> dict[str, dict[str, Any]]:
        raw = await self._redis.hgetall(self.calls_key)
        return {_text(k): json.loads(v) for k, v in raw.items()}

    async def waiting(self) -> dict[str, int]:
        raw = await self._redis.hgetall(self.queues_key)
        return {_text(k): int(v) for k, v in raw.items()}

    # --- internals ------------------------------------------------------------------

    async def _run(self, awaitable: Awaitable[Any], what: str) -> bool:
        ok, _reply = await self._try(awaitable, what)
        return ok

    async def _try(self, awaitable: Awaitable[Any], what: str) -> tuple[bool, Any]:
        """(whether Redis took it, its reply)."""
        now = self._monotonic()
        if self._last_failure is not None and now - self._last_failure < self._retry_after:
            # Down a moment ago: don't spend a connect timeout on every event of the call path.
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never awaited: close it so Python does not warn
            self._failures_since_warning += 1
            return False, None
        try:
            reply = await awaitable
        except (RedisError, OSError) as exc:
            self._last_failure = self._monotonic()
            self._warn(what, exc)
            return False, None
        if self._last_failure is not None:
            log.info("redis_back", skipped_updates=self._failures_since_warning)
            self._last_failure = None
            self._last_warning = None
            self._failures_since_warning = 0
            self.resync_needed = True
        return True, reply

    def _warn(self, what: str, exc: Exception) -> None:
        self._failures_since_warning += 1
        now = self._monotonic()
        if self._last_warning is None or now - self._last_warning >= self._warn_every:
            log.warning(
                "redis_unavailable",
                operation=what,
                error=str(exc),
                failures=self._failures_since_warning,
            )
            self._last_warning = now


# --- callback list changes ------------------------------------------------------------------

EVENT_CALLBACK = "callback"


class CallbackPublisher:
    """Publishes the callback-list changes a session committed (callbacks.take_changes), so
    every open callback page updates within a second, whichever process made the change (the
    dashboard's API, the router's call log and escalation, the CLI, the FastAGI flows).

    Runs in SQLAlchemy's after_commit hook, i.e. in the committing thread: a plain (sync)
    Redis client with short timeouts, and after a failure Redis is left alone for
    `retry_after` seconds, so a Redis outage costs the call path at most one connect timeout
    now and then. Never raises: the change is committed whatever Redis says.
    """

    def __init__(
        self,
        url: str,
        prefix: str,
        *,
        retry_after: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.channel = f"{prefix}:events"
        self._redis = sync_redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=0.5)
        self._retry_after = retry_after
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_since: float | None = None

    def publish(self, changes: Iterable[callbacks.CallbackChange]) -> bool:
        with self._lock:
            down = self._down_since
        if down is not None and self._monotonic() - down < self._retry_after:
            return False
        try:
            pipe = self._redis.pipeline(transaction=False)
            for change in changes:
                pipe.publish(
                    self.channel,
                    _event(
                        EVENT_CALLBACK,
                        {
                            "action": change.action,
                            "callback_id": change.callback_id,
                            "operator": change.operator,
                        },
                    ),
                )
            pipe.execute()
        except (RedisError, OSError) as exc:
            with self._lock:
                if self._down_since is None:
                    log.warning("redis_unavailable", operation="callback_changes", error=str(exc))
                self._down_since = self._monotonic()
            return False
        with self._lock:
            self._down_since = None
        return True

    def close(self) -> None:
        with contextlib.suppress(RedisError, OSError):
            self._redis.close()


# SQLAlchemy's session events are per Session class, not per Database: one hook for the
# process, finding each engine's publisher here (weak: a disposed Database takes it along).
_publishers: weakref.WeakKeyDictionary[Engine, CallbackPublisher] = weakref.WeakKeyDictionary()


def publish_callback_changes(db: Database, url: str, prefix: str) -> CallbackPublisher:
    """From now on, committed callback changes of `db`'s sessions are published on Redis.
    Call once per process at start-up (again for the same database: the new one replaces)."""
    publisher = CallbackPublisher(url, prefix)
    old = _publishers.get(db.engine)
    _publishers[db.engine] = publisher
    if old is not None:
        old.close()
    if not event.contains(Session, "after_commit", _after_commit):
        event.listen(Session, "after_commit", _after_commit)
        event.listen(Session, "after_rollback", _after_rollback)
    return publisher


def _after_commit(session: Session) -> None:
    changes = callbacks.take_changes(session)
    if not changes:
        return
    bind = session.get_bind()
    publisher = _publishers.get(getattr(bind, "engine", bind))  # type: ignore[arg-type]
    if publisher is not None:
        publisher.publish(changes)


def _after_rollback(session: Session) -> None:
    callbacks.take_changes(session)  # never happened: nothing to tell


def _call_json(call: CallView) -> dict[str, Any]:
    return {
        "linkedid": call.linkedid,
        "call_id": call.id,
        "caller_number": call.caller_number,
        "caller_name": call.caller_name,
        "queue": call.queue,
        "operator": call.operator,
        "started_at": _iso(call.started_at),
        "answered_at": _iso(call.answered_at),
        "ended_at": _iso(call.ended_at),
        "outcome": call.outcome,
        "wait_seconds": call.wait_seconds,
        "talk_seconds": call.talk_seconds,
    }


def _event(kind: str, payload: dict[str, Any]) -> str:
    return json.dumps({"type": kind, **payload}, ensure_ascii=False, default=str)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
