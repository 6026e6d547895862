"""The wallboard's shared picture in a real app with real Redis and databases: computed once
for concurrent screens, dropped at once by a live event, and never older than its age limit
when Redis is down (dashboard/live_hub.py; the arithmetic itself is tests/unit/test_live_hub.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from call_router.db import Database
from call_router.settings import Settings
from dashboard import live_hub
from dashboard.main import create_app
from dashboard.routes.wallboard import WALLBOARD_PICTURE
from tests.conftest import bearer_headers
from tests.integration.conftest import REDIS_URL, router_heartbeat
from tests.integration.test_dashboard_api import add_call

NUMBER = "+74950000042"


def board_settings(tmp_path: Path, prefix: str, redis_url: str = REDIS_URL) -> Settings:
    return Settings(
        state_dir=tmp_path / "state", country_code="RU", redis_url=redis_url, redis_prefix=prefix
    )


@asynccontextmanager
async def running(app: FastAPI, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan (the shutdown closes the process's Redis client)."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://dashboard.test",
            headers=bearer_headers(db),
        ) as http,
    ):
        yield http


async def board(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/wallboard")
    assert response.status_code == 200, response.text
    snap: dict[str, Any] = response.json()
    return snap


async def eventually(check: Callable[[], Any], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not await check():
            await asyncio.sleep(0.02)


async def test_a_live_event_drops_the_shared_board_at_once(
    database: Database,
    tmp_path: Path,
    redis_client: Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Only an event may refresh the board here: the age limit is out of reach.
    monkeypatch.setattr(live_hub, "MAX_AGE_SECONDS", 3600.0)
    app = create_app(board_settings(tmp_path, redis_prefix), database, zone=ZoneInfo("UTC"))
    hub = app.state.dashboard.live
    async with running(app, database) as http:
        assert (await board(http))["calls"] == []

        async def subscribed() -> bool:
            return bool(hub.subscribed)

        await eventually(subscribed)
        # Read after the subscription is up (subscribing drops what was read before it).
        assert (await board(http))["calls"] == []
        entry = {"call_id": None, "caller_number": NUMBER, "stage": "menu"}
        await redis_client.hset(f"{redis_prefix}:live:calls", "L42", json.dumps(entry))
        await router_heartbeat(redis_client, redis_prefix)
        # Written without an event: the shared board is still the one read before.
        assert (await board(http))["calls"] == []

        await redis_client.publish(f"{redis_prefix}:events", json.dumps({"type": "call_menu"}))

        async def shows_the_call() -> bool:
            return [c["caller_number"] for c in (await board(http))["calls"]] == [NUMBER]

        await eventually(shows_the_call)
    # Closed with the app: no subscription left behind.
    assert hub.subscribed is False


async def test_concurrent_screens_share_one_computation(
    database: Database,
    tmp_path: Path,
    redis_client: Redis,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(live_hub, "MAX_AGE_SECONDS", 3600.0)
    entry = {"call_id": None, "caller_number": NUMBER, "stage": "queue", "queue": "lift"}
    await redis_client.hset(f"{redis_prefix}:live:calls", "L7", json.dumps(entry))
    await router_heartbeat(redis_client, redis_prefix)
    app = create_app(board_settings(tmp_path, redis_prefix), database, zone=ZoneInfo("UTC"))
    hub = app.state.dashboard.live
    async with running(app, database) as http:
        await board(http)

        async def subscribed() -> bool:
            return bool(hub.subscribed)

        await eventually(subscribed)  # which drops the board read before it
        shared = hub.picture(WALLBOARD_PICTURE)
        before = shared.computations
        *_, english, russian = await asyncio.gather(
            *(http.get("/api/wallboard", params={"lang": lang}) for lang in ["en"] * 10 + ["ru"])
        )
    assert shared.computations == before + 1
    # One computation, each screen in its own language.
    assert english.json()["calls"][0]["stage_label"] != russian.json()["calls"][0]["stage_label"]
    assert english.json()["queues"] == russian.json()["queues"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_with_redis_down_the_board_is_never_older_than_its_age_limit(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = FakeClock()
    monkeypatch.setattr(live_hub, "clock", clock)
    # Port 1: nothing listens, so no event can ever say the board changed.
    settings = board_settings(tmp_path, "down", redis_url="redis://127.0.0.1:1/0")
    app = create_app(settings, database, zone=ZoneInfo("UTC"))
    now = datetime.now(UTC)
    add_call(database, now - timedelta(seconds=30))
    async with running(app, database) as http:
        first = await board(http)
        assert first["live"] is False and len(first["calls"]) == 1

        add_call(database, now - timedelta(seconds=5))
        clock.now += live_hub.MAX_AGE_SECONDS / 2
        assert len((await board(http))["calls"]) == 1  # shared, within the limit

        clock.now += live_hub.MAX_AGE_SECONDS
        assert len((await board(http))["calls"]) == 2  # too old: read afresh
