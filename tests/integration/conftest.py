"""Real databases and Redis for the call-log tests.

`database` runs each test on SQLite (a temp file) and on the real PostgreSQL, both created by the
Alembic migration. PostgreSQL gets a throw-away database per test session. Set
HOTLINE_TEST_POSTGRES_URL / HOTLINE_TEST_REDIS_URL to point elsewhere.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from redis.asyncio import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from call_router.db import Database
from call_router.models import Base
from call_router.settings import Settings
from tests.conftest import require

POSTGRES_ADMIN_URL = os.environ.get(
    "HOTLINE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("HOTLINE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _postgres_reachable() -> tuple[bool, str]:
    try:
        engine = create_engine(POSTGRES_ADMIN_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "not available here"
        return False, f"PostgreSQL not reachable at {make_url(POSTGRES_ADMIN_URL).host}: {exc}"
    return True, ""


@contextmanager
def throwaway_postgres(prefix: str) -> Iterator[str]:
    """The URL of a brand-new, empty PostgreSQL database named `prefix_<random>`, dropped after."""
    ok, reason = _postgres_reachable()
    require(ok, reason)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database for this test session, dropped afterwards."""
    with throwaway_postgres("hotline_calllog_test") as url:
        Database(url).upgrade()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database on each dialect (no migration run yet)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'calls.db'}"
        return
    with throwaway_postgres(f"hotline_{request.module.__name__.rsplit('.', 1)[-1]}") as url:
        yield url


def emptied_postgres(url: str) -> Database:
    """The test PostgreSQL database with every table emptied (ids start again at 1)."""
    db = Database(url)
    with db.engine.begin() as conn:
        tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return db


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """The same test on both dialects; each test starts with empty tables."""
    if request.param == "sqlite":
        db = Database(f"sqlite:///{tmp_path / 'calls.db'}")
        db.upgrade()
    else:
        db = emptied_postgres(request.getfixturevalue("postgres_url"))
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        await client.ping()
    except Exception as exc:
        await client.aclose()
        require(False, f"Redis not reachable at {REDIS_URL}: {exc}")
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def redis_prefix(redis_client: Redis) -> AsyncIterator[str]:
    """A prefix of our own, so parallel test runs and a live hotline never see each other."""
    prefix = f"hotline-test-{uuid.uuid4().hex[:10]}"
    try:
        yield prefix
    finally:
        keys = [key async for key in redis_client.scan_iter(match=f"{prefix}:*")]
        if keys:
            await redis_client.delete(*keys)


async def router_heartbeat(redis: Redis, prefix: str) -> None:
    """What the running router writes every few seconds: without it the dashboard calls the
    live hashes stale (call_router/live_state.py)."""
    from datetime import UTC, datetime

    await redis.set(f"{prefix}:live:heartbeat", datetime.now(UTC).isoformat(), ex=600)


def signed_in_operator(
    db: Database, name: str, operator_login: str, tenant: str | None
) -> tuple[dict[str, str], dict[str, str]]:
    """An operator account `name` linked to roster login `operator_login` (a tenant's, by its
    slug, or the centre's), signed in: its session cookie and the CSRF header its POSTs carry."""
    from datetime import UTC, datetime, timedelta

    from call_router import accounts
    from dashboard.deps import SESSION_COOKIE

    now = datetime.now(UTC)
    with db.session() as session:
        user = accounts.create_user(
            session,
            name,
            "a-long-password-1",
            accounts.OPERATOR,
            operator_login=operator_login,
            tenant=tenant,
            now=now,
        )
        cookie, row = accounts.start_session(session, user, now=now, lifetime=timedelta(hours=1))
    return {SESSION_COOKIE: cookie}, {"X-CSRF-Token": row.csrf_token}


def signed_in_crew(
    db: Database, name: str, crew_id: int, tenant: str | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """A crew account `name` working as crew `crew_id`, signed in: its session cookie and the
    CSRF header its POSTs carry."""
    from datetime import UTC, datetime, timedelta

    from call_router import accounts
    from call_router.request_attachments import link_member
    from dashboard.deps import SESSION_COOKIE

    now = datetime.now(UTC)
    with db.session() as session:
        user = accounts.create_user(
            session, name, "a-long-password-1", accounts.CREW, tenant=tenant, now=now
        )
        session.flush()
        link_member(session, crew_id, name)
        cookie, row = accounts.start_session(session, user, now=now, lifetime=timedelta(hours=1))
    return {SESSION_COOKIE: cookie}, {"X-CSRF-Token": row.csrf_token}


def live_settings(state_dir: Path, redis_prefix: str) -> Settings:
    """A dashboard on the test's own Redis prefix, with no Asterisk behind it (agent changes
    are stored as pending)."""
    return Settings(
        state_dir=state_dir,
        country_code="RU",
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix,
        ami_port=1,
    )


# --- a real HTTP server for the dashboard (SSE needs real streaming) ---------------------------


@contextmanager
def running(server: uvicorn.Server, timeout: float = 10) -> Iterator[None]:
    """The dashboard's uvicorn server in a thread of this process, started within `timeout`
    seconds, stopped when the block ends."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "dashboard did not start"
        time.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def served(
    settings: Settings, database: Database, port: int, zone: ZoneInfo | None = None
) -> Iterator[str]:
    """The dashboard app with these settings on a loopback port, in a thread of this process:
    its base URL while the block runs. `zone`: the centre's (default UTC)."""
    from dashboard.main import create_app

    app = create_app(settings, database, zone=zone or ZoneInfo("UTC"))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    with running(server):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
def serve(database: Database) -> Iterator[Callable[[Settings, int], str]]:
    """Start the app with given settings on a loopback port in a thread; yields a starter
    that returns the base URL. Stopped after the test."""
    with ExitStack() as servers:

        def start(settings: Settings, port: int, zone: ZoneInfo | None = None) -> str:
            return servers.enter_context(served(settings, database, port, zone))

        yield start


class SseEvents:
    """Reads the events of one name off an SSE response (others are skipped)."""

    def __init__(self, response: httpx.Response, event: str) -> None:
        self._lines = response.aiter_lines()
        self._event = event
        self.seen: list[str] = []  # every event name read, in order

    async def next(self, timeout: float) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            event = None
            async for line in self._lines:
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                    self.seen.append(event)
                elif line.startswith("data:") and event == self._event:
                    data: dict[str, Any] = json.loads(line.split(":", 1)[1])
                    return data
            raise AssertionError(f"stream ended; events seen: {self.seen}")

        return await asyncio.wait_for(read(), timeout)

    async def until_closed(self, timeout: float) -> list[str]:
        """Every event name up to the server closing the stream."""

        async def read() -> list[str]:
            async for line in self._lines:
                if line.startswith("event:"):
                    self.seen.append(line.split(":", 1)[1].strip())
            return self.seen

        return await asyncio.wait_for(read(), timeout)


# --- the real stack: calls and callback entries as the API shows them --------------------------


def calls_of(api: httpx.Client, caller: str) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = api.get("/api/calls", params={"caller": caller}).json()
    return calls


def entry_of(api: httpx.Client, number: str, status: str = "open") -> dict[str, Any] | None:
    """The caller's callback entry with that status, if there is one."""
    rows = api.get("/api/callbacks", params={"status": status}).json()
    return next((row for row in rows if row["caller_number"] == number), None)


def missed_call(stack: Settings, api: httpx.Client, operator: dict[str, Any], caller: str) -> int:
    """The resident waits in the heating queue, the operator's phone only rings, they hang up:
    the id of the callback entry that leaves."""
    from hotline.sipua.softphone import Softphone
    from hotline.sipua.testcall import place_call
    from tests.conftest import finished_call, wait_for

    with Softphone(stack, operator["sip_login"], operator["sip_password"], answer=False):
        result = place_call(stack, dtmf="3", from_number=caller, hold=8)
        assert result.answered, result.detail
        call = finished_call(api, caller)
    assert call["outcome"] == "abandoned_in_queue"
    entry = wait_for(lambda: entry_of(api, caller), what=f"a callback entry for {caller}")
    return int(entry["id"])
