"""A tenant's supervisor in a real Chromium sees its own tenant only: the wallboard (first
picture and the pictures its SSE stream pushes after live events from Redis, which holds every
tenant's calls) and the call log show tenant A's calls and operators, never tenant B's.

The dashboard runs in this process on a loopback port over a real SQLite database and the real
Redis (the live state is written as the router writes it); no Asterisk is needed for this.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import uvicorn
from redis import Redis

from call_router import accounts, tenants
from call_router.db import Database
from call_router.models import Call, Operator
from call_router.settings import Settings
from tests.browser.conftest import Account, _browser_page, sign_in
from tests.conftest import PORT_BASE, require
from tests.integration.conftest import REDIS_URL

A_NUMBER, B_NUMBER, A_LATER, B_LATER = "79140000101", "79140000202", "79140000103", "79140000204"


@pytest.fixture
def redis_prefix() -> Iterator[tuple[Redis, str]]:
    client = Redis.from_url(REDIS_URL, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except Exception as exc:
        client.close()
        require(False, f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"hotline-test-{uuid.uuid4().hex[:10]}"
    try:
        yield client, prefix
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'calls.db'}")
    db.upgrade()
    try:
        yield db
    finally:
        db.dispose()


@pytest.fixture
def dashboard(database: Database, tmp_path: Path, redis_prefix: tuple[Redis, str]) -> Iterator[str]:
    from dashboard.main import create_app

    settings = Settings(
        state_dir=tmp_path / "state",
        country_code="RU",
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix[1],
        ami_port=1,
    )
    app = create_app(settings, database, zone=ZoneInfo("UTC"))
    port = PORT_BASE + 953
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "dashboard did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _waiting_call(db: Database, tenant_id: int, number: str, operator: str) -> int:
    now = datetime.now(UTC)
    with db.session() as session:
        call = Call(
            linkedid=uuid.uuid4().hex,
            caller_number=number,
            started_at=now - timedelta(seconds=30),
            queue_joined_at=now - timedelta(seconds=20),
            queue="plumbing",
            operator=operator,
            tenant_id=tenant_id,
        )
        session.add(call)
        session.flush()
        return call.id


def _live_call(redis: Redis, prefix: str, call_id: int, number: str) -> None:
    """As the router writes it: the call in the live hash, an event, a fresh heartbeat."""
    entry = {
        "call_id": call_id,
        "linkedid": f"live-{call_id}",
        "caller_number": number,
        "queue": "plumbing",
        "stage": "queue",
        "started_at": datetime.now(UTC).isoformat(),
    }
    redis.hset(f"{prefix}:live:calls", f"live-{call_id}", json.dumps(entry))
    redis.set(f"{prefix}:live:heartbeat", datetime.now(UTC).isoformat())
    redis.publish(f"{prefix}:events", json.dumps({"type": "call_queue", **entry}))


def test_a_tenant_supervisor_sees_only_its_tenant_on_the_wallboard_and_call_log(
    chromium: Any,
    request: pytest.FixtureRequest,
    database: Database,
    dashboard: str,
    redis_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_prefix
    account = Account("dom-a-boss", "a-long-enough-password")
    with database.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        session.add_all(
            [
                Operator(name="Anna A", sip_login="anna", sip_password="x" * 16, tenant_id=a),
                Operator(name="Boris B", sip_login="boris", sip_password="x" * 16, tenant_id=b),
            ]
        )
        accounts.create_user(
            session,
            account.username,
            account.password,
            "supervisor",
            tenant="dom-a",
            now=datetime.now(UTC),
        )
    redis.hset(
        f"{prefix}:live:operators",
        mapping={
            "anna": json.dumps({"state": "free"}),
            "boris": json.dumps({"state": "paused", "reason": "b-lunch"}),
        },
    )
    _live_call(redis, prefix, _waiting_call(database, a, A_NUMBER, "Anna A"), A_NUMBER)
    _live_call(redis, prefix, _waiting_call(database, b, B_NUMBER, "Boris B"), B_NUMBER)

    with _browser_page(chromium, request) as holder:
        page = holder.page
        sign_in(page, dashboard, account)
        page.goto(f"{dashboard}/wallboard?lang=en")
        page.wait_for_selector("#wb-status:has-text('Live')", timeout=15_000)
        page.wait_for_selector(f"#wb-calls:has-text('{A_NUMBER}')", timeout=10_000)
        board = page.inner_text("#wallboard")
        assert B_NUMBER not in board and "Boris" not in board and "b-lunch" not in board
        assert "Anna A" in page.inner_text("#wb-operators")

        # Live events: a new B caller, then a new A caller. The stream's pictures show A's.
        _live_call(redis, prefix, _waiting_call(database, b, B_LATER, "Boris B"), B_LATER)
        _live_call(redis, prefix, _waiting_call(database, a, A_LATER, "Anna A"), A_LATER)
        page.wait_for_selector(f"#wb-calls:has-text('{A_LATER}')", timeout=10_000)
        board = page.inner_text("#wallboard")
        assert B_NUMBER not in board and B_LATER not in board and "Boris" not in board

        page.goto(f"{dashboard}/calls?lang=en")
        table = page.inner_text("table.calls")
        assert A_NUMBER[-7:] in table.replace(" ", "").replace("-", "")
        assert B_NUMBER[-7:] not in table.replace(" ", "").replace("-", "")
        # ?tenant=dom-b only narrows A's wall: nothing of B's.
        page.goto(f"{dashboard}/wallboard?lang=en&tenant=dom-b")
        page.wait_for_selector("#wb-status:has-text('Live')", timeout=15_000)
        assert B_NUMBER not in page.inner_text("#wallboard")
        assert holder.dialogs == []
