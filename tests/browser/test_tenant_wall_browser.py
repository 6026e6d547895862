"""A tenant's supervisor in a real Chromium sees its own tenant only: the wallboard (first
picture and the pictures its SSE stream pushes after live events from Redis, which holds every
tenant's calls) and the call log show tenant A's calls and operators, never tenant B's.

The dashboard runs in this process on a loopback port over a real SQLite database and the real
Redis (the live state is written as the router writes it); no Asterisk is needed for this.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from redis import Redis

from call_router import accounts, tenants
from call_router.db import Database
from call_router.models import Call, Operator
from call_router.settings import Settings
from tests.browser.conftest import Account, _browser_page, sign_in
from tests.conftest import PORT_BASE, add_row, require, wait_for
from tests.integration.conftest import REDIS_URL, served

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
    settings = Settings(
        state_dir=tmp_path / "state",
        country_code="RU",
        redis_url=REDIS_URL,
        redis_prefix=redis_prefix[1],
        ami_port=1,
    )
    with served(settings, database, PORT_BASE + 953) as url:
        yield url


def _waiting_call(db: Database, tenant_id: int, number: str, operator: str) -> int:
    now = datetime.now(UTC)
    call = Call(
        linkedid=uuid.uuid4().hex,
        caller_number=number,
        started_at=now - timedelta(seconds=30),
        queue_joined_at=now - timedelta(seconds=20),
        queue="plumbing",
        operator=operator,
        tenant_id=tenant_id,
    )
    return add_row(db, call)


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


def test_the_centre_s_wallboard_shows_tenants_own_queues_and_narrows_to_one(
    chromium: Any,
    request: pytest.FixtureRequest,
    database: Database,
    dashboard: str,
    redis_prefix: tuple[Redis, str],
) -> None:
    """Each tenant's own queues (`t<id>_<service>`) are rows of the board labelled with the
    company, in the first picture and in the stream's (rendered by wallboard.js); the centre's
    supervisor picks one company in the filter and sees only its own queues."""
    redis, prefix = redis_prefix
    account = Account("centre-boss", "a-long-enough-password")
    with database.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        tenants.set_tenant_queues(session, "dom-a", ["plumbing"])
        tenants.set_tenant_queues(session, "dom-b", ["heating", "lift"])
        accounts.create_user(
            session, account.username, account.password, "supervisor", now=datetime.now(UTC)
        )
    _live_call(redis, prefix, _waiting_call(database, b, B_NUMBER, "Boris B"), B_NUMBER)

    with _browser_page(chromium, request) as holder:
        page = holder.page
        sign_in(page, dashboard, account)
        page.goto(f"{dashboard}/wallboard?lang=en")
        page.wait_for_selector("#wb-status:has-text('Live')", timeout=15_000)
        # A live event: the stream pushes a picture that wallboard.js renders.
        _live_call(redis, prefix, _waiting_call(database, a, A_NUMBER, "Anna A"), A_NUMBER)
        page.wait_for_selector(f"#wb-calls:has-text('{A_NUMBER}')", timeout=10_000)
        rows = page.locator("#wb-queues tr[data-tenant]")
        labels = {
            rows.nth(i).get_attribute("data-queue"): rows.nth(i).locator("td").first.inner_text()
            for i in range(rows.count())
        }
        assert labels == {
            f"t{a}_plumbing": "Dom A · plumbing",
            f"t{b}_heating": "Dom B · heating",
            f"t{b}_lift": "Dom B · lift",
        }
        assert page.locator("#wb-queues tr[data-queue='coordinator']").count() == 1

        page.select_option("#wb-tenant", "dom-b")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**/wallboard?tenant=dom-b*")
        page.wait_for_selector("#wb-status:has-text('Live')", timeout=15_000)
        _live_call(redis, prefix, _waiting_call(database, b, B_LATER, "Boris B"), B_LATER)
        page.wait_for_selector(f"#wb-calls:has-text('{B_LATER}')", timeout=10_000)
        tenants_shown = {
            page.locator("#wb-queues tr[data-tenant]").nth(i).get_attribute("data-tenant")
            for i in range(page.locator("#wb-queues tr[data-tenant]").count())
        }
        assert tenants_shown == {"dom-b"}
        assert A_NUMBER not in page.inner_text("#wallboard")
        # This dashboard has no Asterisk: the call-control section's poll of who is monitoring
        # whom is answered 503 (Asterisk unreachable), which the browser logs. Nothing else may be.
        errors = [e for e in holder.console_errors if not e.endswith("/api/control/monitors")]
        assert holder.dialogs == [] and errors == []


def test_a_coordinator_sets_the_company_of_an_unknown_call_from_the_screen_pop(
    chromium: Any,
    request: pytest.FixtureRequest,
    database: Database,
    dashboard: str,
    redis_prefix: tuple[Redis, str],
) -> None:
    redis, prefix = redis_prefix
    account = Account("cora", "a-long-enough-password")
    now = datetime.now(UTC)
    with database.session() as session:
        tenants.add_tenant(session, "Dom A", slug="dom-a")
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        session.add(Operator(name="Cora", sip_login="cora", sip_password="x" * 16))
        accounts.create_user(
            session, account.username, account.password, "operator", operator_login="cora",
            now=now,
        )  # fmt: skip
        call = Call(
            linkedid=uuid.uuid4().hex,
            caller_number=A_LATER,
            started_at=now - timedelta(minutes=2),
            queue_joined_at=now - timedelta(minutes=1),
            answered_at=now - timedelta(seconds=30),
            queue="coordinator",
            operator="Cora",
            tenant_source="unknown",
        )
        session.add(call)
        session.flush()
        call_id, linkedid = call.id, call.linkedid
    entry = {"call_id": call_id, "linkedid": linkedid, "stage": "talking", "operator": "Cora"}
    redis.hset(f"{prefix}:live:calls", linkedid, json.dumps(entry))
    redis.set(f"{prefix}:live:heartbeat", datetime.now(UTC).isoformat())

    with _browser_page(chromium, request) as holder:
        page = holder.page
        sign_in(page, dashboard, account)
        page.goto(f"{dashboard}/operator?lang=en")
        page.wait_for_selector("#op-set-company", timeout=10_000)
        wait_for(lambda: page.get_attribute("#operator", "data-generated-at"), what="live")
        page.select_option("#op-company", "dom-b")
        # A live update re-renders the call card before the click: the choice must survive it.
        before = page.get_attribute("#operator", "data-generated-at")
        moved = {**entry, "queue": "coordinator"}
        redis.hset(f"{prefix}:live:calls", linkedid, json.dumps(moved))
        redis.set(f"{prefix}:live:heartbeat", datetime.now(UTC).isoformat())
        redis.publish(f"{prefix}:events", json.dumps({"type": "call_queue", **moved}))
        wait_for(
            lambda: page.get_attribute("#operator", "data-generated-at") != before,
            timeout=10,
            what="a live update of the call card",
        )
        assert page.input_value("#op-company") == "dom-b"
        page.click("#op-set-company button[type=submit]")
        page.wait_for_url("**/operator?operator=cora", timeout=10_000)
        page.wait_for_selector("#op-call-card", timeout=10_000)
        assert page.locator("#op-set-company").count() == 0
        assert holder.dialogs == []
    with database.session() as session:
        placed = session.get(Call, call_id)
        assert placed is not None
        assert (placed.tenant_id, placed.tenant_source) == (b, "coordinator")
