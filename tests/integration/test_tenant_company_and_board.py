"""Issue 19's last pieces through the real app (uvicorn on a loopback port, SQLite and
PostgreSQL, Redis): a coordinator places a call that arrived unknown with its company from
the screen-pop (page and API), which no tenant's account may do (not even for its own
company); the wallboard lists the tenants' own queues labelled with their company, narrowed by
tenant for the centre's staff and walled for a tenant's supervisor; a tenant's own
service-level target is what its wallboard and reports measure, while the centre keeps its own.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from redis.asyncio import Redis
from sqlalchemy import inspect, select, text

from call_router import tenant_boards, tenants
from call_router.db import Database, alembic_config, upgrade
from call_router.models import CALLBACK_OPEN, Call, Callback, CallEvent, Operator
from tests.conftest import PORT_BASE, add_row, bearer_headers, midday_zone
from tests.integration.conftest import live_settings, signed_in_operator

NOW = datetime.now(UTC)
UNKNOWN_CALLER = "79140000009"


@dataclass(frozen=True)
class World:
    a: int
    b: int
    unknown_call: int  # the centre's: arrived unknown, a coordinator is talking to it
    b_call: int


def _call(db: Database, tenant_id: int | None, number: str, operator: str, queue: str) -> int:
    call = Call(
        linkedid=uuid.uuid4().hex,
        caller_number=number,
        started_at=NOW - timedelta(minutes=3),
        queue_joined_at=NOW - timedelta(minutes=2),
        answered_at=NOW - timedelta(minutes=1),
        queue=queue,
        operator=operator,
        tenant_id=tenant_id,
        tenant_source="unknown" if tenant_id is None else "number",
    )
    return add_row(db, call)


@pytest.fixture
def world(database: Database) -> World:
    with database.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        tenants.set_tenant_queues(session, "dom-a", ["plumbing"])
        tenants.set_tenant_queues(session, "dom-b", ["heating", "lift"])
        session.add_all(
            [
                Operator(name="Cora", sip_login="cora", sip_password="x" * 16),
                Operator(name="Anna", sip_login="anna", sip_password="x" * 16, tenant_id=a),
            ]
        )
    unknown = _call(database, None, UNKNOWN_CALLER, "Cora", "coordinator")
    b_call = _call(database, b, "79140000002", "Boris", f"t{b}_heating")
    with database.session() as session:
        # The voicemail callback opened from the unknown call: it follows the call.
        session.add(
            Callback(
                caller_number=UNKNOWN_CALLER,
                status=CALLBACK_OPEN,
                reason="voicemail",
                last_call_id=unknown,
                created_at=NOW,
                updated_at=NOW,
            )
        )
    return World(a, b, unknown, b_call)


async def _live(redis: Redis, prefix: str, db: Database, call_id: int) -> None:
    """The router's live state: the unknown call is up (so it is the coordinator's screen-pop)."""
    with db.session() as session:
        call = session.get(Call, call_id)
        assert call is not None
        linkedid = call.linkedid
    entry = {"call_id": call_id, "linkedid": linkedid, "stage": "talking", "queue": "coordinator"}
    await redis.hset(f"{prefix}:live:calls", mapping={linkedid: json.dumps(entry)})  # type: ignore[misc]
    await redis.set(f"{prefix}:live:heartbeat", datetime.now(UTC).isoformat())


@pytest.fixture
def base(serve: Any, tmp_path: Path, redis_prefix: str) -> str:
    # The wallboard counts today's calls from local midnight: in a zone where it is midday the
    # calls of a few minutes ago are today's whatever the hour the suite runs at.
    settings = live_settings(tmp_path / "state", redis_prefix)
    return str(serve(settings, PORT_BASE + 961, midday_zone()))


def _tenant_of(db: Database, call_id: int) -> tuple[int | None, str | None]:
    with db.session() as session:
        call = session.get(Call, call_id)
        assert call is not None
        return call.tenant_id, call.tenant_source


async def test_a_coordinator_sets_the_company_from_the_screen_pop(
    database: Database, world: World, base: str, redis_client: Redis, redis_prefix: str
) -> None:
    await _live(redis_client, redis_prefix, database, world.unknown_call)
    cookies, headers = signed_in_operator(database, "cora", "cora", None)
    csrf = headers["X-CSRF-Token"]
    with httpx.Client(base_url=base, cookies=cookies) as browser:
        page = browser.get("/operator")
        assert page.status_code == 200, page.text
        form = re.search(r'<form class="set-company"[^>]*action="([^"]+)"', page.text)
        assert form is not None, "the screen-pop offers the company choice"
        assert 'value="dom-a"' in page.text and 'value="dom-b"' in page.text
        # Without the session's CSRF token a cookie's POST is refused.
        forged = browser.post(form.group(1), data={"tenant": "dom-a"})
        assert forged.status_code == 403
        assert _tenant_of(database, world.unknown_call) == (None, "unknown")
        sent = browser.post(
            form.group(1), data={"tenant": "dom-a", "csrf_token": csrf, "back": "/operator"}
        )
        assert sent.status_code == 303 and sent.headers["location"] == "/operator"
        assert _tenant_of(database, world.unknown_call) == (world.a, "coordinator")
        # Placed: the screen-pop no longer offers it.
        assert 'class="set-company"' not in browser.get("/operator").text
    with database.session() as session:
        event = session.scalars(
            select(CallEvent).where(
                CallEvent.call_id == world.unknown_call, CallEvent.kind == "tenant"
            )
        ).one()
        assert event.data["tenant"] == "dom-a" and event.data["by"] == "cora"
        entry = session.scalars(
            select(Callback).where(Callback.last_call_id == world.unknown_call)
        ).one()
        assert entry.tenant_id == world.a
    # Now it is A's: A's supervisor sees it, with who placed it on the timeline.
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant="dom-a")
    ) as api:
        detail = api.get(f"/api/calls/{world.unknown_call}")
        assert detail.status_code == 200, detail.text
        assert detail.json()["tenant"] == "dom-a"
        assert detail.json()["tenant_source"] == "coordinator"


def test_the_company_api_for_the_centre_s_staff(
    database: Database, world: World, base: str
) -> None:
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant=None)
    ) as api:
        url = f"/api/calls/{world.unknown_call}/tenant"
        assert api.post(url, json={"tenant": "nobody"}).status_code == 422
        for bad in ({}, {"tenant": ""}, {"tenant": "x" * 40}, {"tenant": 5}, [1]):
            assert api.post(url, json=bad).status_code == 422, bad
        assert api.post("/api/calls/99999999/tenant", json={"tenant": "dom-a"}).status_code == 404
        done = api.post(url, json={"tenant": "dom-b"})
        assert done.status_code == 200, done.text
        assert done.json() == {
            "id": world.unknown_call,
            "tenant": "dom-b",
            "tenant_source": "coordinator",
        }
        # Placed once: a second choice (another coordinator's at the same time) is refused.
        again = api.post(url, json={"tenant": "dom-a"})
        assert again.status_code == 409, again.text
        # A tenant's call is never moved to another tenant this way.
        moved = api.post(f"/api/calls/{world.b_call}/tenant", json={"tenant": "dom-a"})
        assert moved.status_code == 409
    assert _tenant_of(database, world.unknown_call) == (world.b, "coordinator")
    assert _tenant_of(database, world.b_call) == (world.b, "number")


async def test_a_tenant_s_account_cannot_place_or_re_place_calls(
    database: Database, world: World, base: str, redis_client: Redis, redis_prefix: str
) -> None:
    """Attack: A's supervisor token and A's operator account try to take the centre's unknown
    call for A (or for B), and to move B's call to A: 403 for every one, nothing changes."""
    await _live(redis_client, redis_prefix, database, world.unknown_call)
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant="dom-a")
    ) as api:
        for call_id in (world.unknown_call, world.b_call):
            for slug in ("dom-a", "dom-b"):
                refused = api.post(f"/api/calls/{call_id}/tenant", json={"tenant": slug})
                assert refused.status_code == 403, (call_id, slug, refused.text)
                page = api.post(f"/calls/{call_id}/tenant", data={"tenant": slug})
                assert page.status_code == 403, (call_id, slug, page.text)
    cookies, csrf = signed_in_operator(database, "anna-a", "anna", "dom-a")
    with httpx.Client(base_url=base, cookies=cookies, headers=csrf) as api:
        assert 'class="set-company"' not in api.get("/operator").text
        for slug in ("dom-a", "dom-b"):
            refused = api.post(f"/api/calls/{world.unknown_call}/tenant", json={"tenant": slug})
            assert refused.status_code == 403, refused.text
    # Only the centre's roles: a dispatcher of the centre is refused too.
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "dispatcher", tenant=None)
    ) as api:
        refused = api.post(f"/api/calls/{world.unknown_call}/tenant", json={"tenant": "dom-a"})
        assert refused.status_code == 403
    assert _tenant_of(database, world.unknown_call) == (None, "unknown")
    assert _tenant_of(database, world.b_call) == (world.b, "number")


def _queues(snapshot: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {q["queue"]: q for q in snapshot["queues"]}


def test_the_wallboard_lists_tenants_own_queues_by_company(
    database: Database, world: World, base: str
) -> None:
    a_plumbing, b_heating, b_lift = (
        f"t{world.a}_plumbing",
        f"t{world.b}_heating",
        f"t{world.b}_lift",
    )
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant=None)
    ) as api:
        everyone = _queues(api.get("/api/wallboard").json())
        # Every tenant's own queue, idle or not, after the centre's, labelled with its company.
        assert everyone[a_plumbing]["label"] == "Dom A · plumbing"
        assert everyone[a_plumbing]["tenant"] == "dom-a"
        assert everyone[b_lift] == {**everyone[b_lift], "label": "Dom B · lift", "offered": 0}
        assert everyone[b_heating]["offered"] == 1
        assert everyone["plumbing"]["tenant"] is None
        assert everyone["plumbing"]["label"] == "plumbing"
        names = list(everyone)
        assert names.index("coordinator") < names.index(a_plumbing) < names.index(b_heating)
        # The centre's staff narrow it to one company.
        only_b = _queues(api.get("/api/wallboard", params={"tenant": "dom-b"}).json())
        assert b_heating in only_b and b_lift in only_b and a_plumbing not in only_b
        page = api.get("/wallboard", params={"tenant": "dom-a"}).text
        assert f'data-queue="{a_plumbing}" data-tenant="dom-a"' in page
        assert "Dom A · plumbing" in page and "Dom B · lift" not in page
    # A's supervisor: its own queues only, whatever it asks.
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant="dom-a")
    ) as api:
        for asked in (None, "dom-b"):
            params = {"tenant": asked} if asked else {}
            seen = _queues(api.get("/api/wallboard", params=params).json())
            assert b_heating not in seen and b_lift not in seen, asked
        own = _queues(api.get("/api/wallboard").json())
        assert own[a_plumbing]["label"] == "Dom A · plumbing"
        page = api.get("/wallboard").text
        assert "Dom A · plumbing" in page and "Dom B" not in page


def test_a_tenant_s_own_service_level_target_is_its_board_s_and_reports(
    database: Database, world: World, base: str
) -> None:
    with database.session() as session:
        tenant_boards.set_service_level(session, "dom-b", 45, 0.95)
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant="dom-b")
    ) as api:
        board = api.get("/api/wallboard").json()
        assert (board["service_level_seconds"], board["service_level_target"]) == (45, 0.95)
        page = api.get("/wallboard").text
        assert "(45 " in page
        report = api.get("/reports").text
        assert re.search(r'id="rep-sl-target">/ 95%', report), report[:2000]
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant=None)
    ) as api:
        # The centre's roll-up keeps the centre's target; narrowed to B, B's.
        centre = api.get("/api/wallboard").json()
        assert (centre["service_level_seconds"], centre["service_level_target"]) == (20, 0.8)
        narrowed = api.get("/api/wallboard", params={"tenant": "dom-b"}).json()
        assert narrowed["service_level_seconds"] == 45
        assert 'id="rep-sl-target">/ 80%' in api.get("/reports").text
        # A, which set none, is measured against the centre's.
        a = api.get("/api/wallboard", params={"tenant": "dom-a"}).json()
        assert (a["service_level_seconds"], a["service_level_target"]) == (20, 0.8)


def test_migration_0021_keeps_every_tenant_both_ways(empty_url: str) -> None:  # noqa: F811
    """A populated database gains the (empty: the centre's) targets and loses only them."""
    db = Database(empty_url)
    try:
        upgrade(empty_url, "0020")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tenants (id, slug, name, created_at)"
                    " VALUES (1, 'dom-a', 'Dom A', :now), (2, 'dom-b', 'Dom B', :now)"
                ),
                {"now": NOW.replace(tzinfo=None)},
            )
        upgrade(empty_url, "0021")
        rows = "SELECT id, slug, service_level_seconds, service_level_target FROM tenants"
        with db.engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text(rows + " ORDER BY id"))] == [
                (1, "dom-a", None, None),
                (2, "dom-b", None, None),
            ]
        with db.session() as session:
            tenant_boards.set_service_level(session, "dom-b", 30, 0.9)
        command.downgrade(alembic_config(empty_url), "0020")
        columns = {c["name"] for c in inspect(db.engine).get_columns("tenants")}
        assert "service_level_seconds" not in columns and "service_level_target" not in columns
        with db.engine.connect() as conn:
            assert [tuple(r) for r in conn.execute(text("SELECT id, slug FROM tenants"))] == [
                (1, "dom-a"),
                (2, "dom-b"),
            ]
        db.upgrade()
    finally:
        db.dispose()
