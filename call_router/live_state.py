"""Live view of the hotline in Redis, for the dashboard's wallboard.

- channel `<prefix>:events`: one JSON object per change ({"type": ..., ...});
- hash `<prefix>:live:calls`: linkedid → JSON of each call in progress (stage menu/queue/talking);
- hash `<prefix>:live:queues`: queue → number of callers waiting;
- hashes `<prefix>:live:operators` (login → state) and `<prefix>:live:queue_agents`
  (queue → operators free/busy/paused/offline), kept by the router from queue member events.

Redis is a convenience, the database is the record: when Redis is down every method logs a
(rate-limited) warning and returns; redis-py reconnects by itself on the next command.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT

from call_router.call_log import CallView

STAGE_MENU = "menu"
STAGE_QUEUE = "queue"
STAGE_TALKING = "talking"

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
        now = self._monotonic()
        if self._last_failure is not None and now - self._last_failure < self._retry_after:
            # Down a moment ago: don't spend a connect timeout on every event of the call path.
            if inspect.iscoroutine(awaitable):
                awaitable.close()  # never awaited: close it so Python does not warn
            self._failures_since_warning += 1
            return False
        try:
            await awaitable
        except (RedisError, OSError) as exc:
            self._last_failure = self._monotonic()
            self._warn(what, exc)
            return False
        if self._last_failure is not None:
            log.info("redis_back", skipped_updates=self._failures_since_warning)
            self._last_failure = None
            self._last_warning = None
            self._failures_since_warning = 0
            self.resync_needed = True
        return True

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
