"""The tenant wall around everything else a tenant's user can open, attacked through the real
app (uvicorn on a loopback port, real SQLite and PostgreSQL, real Redis): operators and their
states, meter readings, dispositions, reports and their CSV, the wallboard (snapshot and SSE
stream, fed by Redis's live state that holds every tenant's calls) and the callback list's
stream. A tenant-A supervisor, operator or token guessing tenant B's ids, logins and filters
gets a 404 or nothing; the centre's staff see every tenant and narrow with `?tenant=`.

Each of these fails when the wall is only the calls' and callbacks' (call_router/tenant_wall.py
before OWNED took the operators, OF_A_CALL and OF_AN_OPERATOR) or when the wallboard takes
Redis's live state unfiltered: the pages then show B's rows to A.
"""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis

from call_router import tenants
from call_router.agent_models import AgentState, AgentStateLog, CallDisposition
from call_router.db import Database
from call_router.meter_models import MeterReading
from call_router.models import CALLBACK_OPEN, Call, Callback, Operator
from call_router.settings import Settings
from tests.conftest import PORT_BASE, add_row, bearer_headers
from tests.integration.conftest import SseEvents, live_settings, signed_in_operator

NOW = datetime.now(UTC)
PAYER = "100200"


@dataclass(frozen=True)
class World:
    a_call: int
    b_call: int
    a_reading: int
    b_reading: int


def _call(db: Database, tenant_id: int | None, number: str, operator: str) -> int:
    """A call of `tenant_id` still waiting in the plumbing queue (open: the wallboard's)."""
    call = Call(
        linkedid=uuid.uuid4().hex,
        caller_number=number,
        started_at=NOW - timedelta(minutes=2),
        queue_joined_at=NOW - timedelta(minutes=1),
        queue="plumbing",
        operator=operator,
        tenant_id=tenant_id,
    )
    return add_row(db, call)


@pytest.fixture
def world(database: Database) -> World:
    with database.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        session.add_all(
            [
                Operator(name="Anna", sip_login="anna", sip_password="x" * 16, tenant_id=a),
                Operator(name="Boris", sip_login="boris", sip_password="x" * 16, tenant_id=b),
                AgentState(sip_login="anna", logged_in=True, paused=False, since=NOW),
                AgentState(
                    sip_login="boris",
                    logged_in=True,
                    paused=True,
                    pause_reason="b-lunch",
                    since=NOW,
                ),
                AgentStateLog(sip_login="boris", at=NOW, action="pause", source="api"),
            ]
        )
    a_call = _call(database, a, "79140000001", "Anna")
    b_call = _call(database, b, "79140000002", "Boris")
    with database.session() as session:
        # B's call of two days ago: its quarter hour is closed, so a report reads it from the
        # rolled-up rows (call_router/report_rollups.py), which hold every tenant's figures.
        before = NOW - timedelta(days=2)
        session.add(
            Call(
                linkedid=uuid.uuid4().hex,
                caller_number="79140000002",
                started_at=before,
                queue_joined_at=before,
                answered_at=before + timedelta(seconds=5),
                ended_at=before + timedelta(minutes=3),
                queue="plumbing",
                operator="Boris",
                outcome="completed",
                tenant_id=b,
            )
        )
    with database.session() as session:
        for call_id, number in ((a_call, "79140000001"), (b_call, "79140000002")):
            session.add(
                Callback(
                    caller_number=number,
                    status=CALLBACK_OPEN,
                    reason="abandoned",
                    last_call_id=call_id,
                    created_at=NOW,
                    updated_at=NOW,
                    tenant_id=a if call_id == a_call else b,
                )
            )
        session.add(
            CallDisposition(call_id=b_call, category="b-secret", note="B's note", operator="boris")
        )
        readings = [
            MeterReading(payer_code=PAYER, meter="cold_water", value=value, call_id=call_id)
            for call_id, value in ((a_call, 111), (b_call, 222))
        ]
        session.add_all(readings)
        session.flush()
        a_reading, b_reading = readings[0].id, readings[1].id
    return World(a_call=a_call, b_call=b_call, a_reading=a_reading, b_reading=b_reading)


@pytest.fixture
async def live(redis_client: Redis, redis_prefix: str) -> AsyncIterator[Redis]:
    yield redis_client


async def _publish_live_state(redis: Redis, prefix: str, world: World) -> None:
    """What the router keeps in Redis: both tenants' calls waiting, both operators, the
    callers waiting per queue (every tenant's), and a fresh heartbeat."""
    calls = {
        f"live-{call_id}": json.dumps(
            {
                "call_id": call_id,
                "linkedid": f"live-{call_id}",
                "caller_number": number,
                "queue": "plumbing",
                "stage": "queue",
                "started_at": (NOW - timedelta(minutes=2)).isoformat(),
            }
        )
        for call_id, number in ((world.a_call, "79140000001"), (world.b_call, "79140000002"))
    }
    await redis.hset(f"{prefix}:live:calls", mapping=calls)  # type: ignore[misc]
    await redis.hset(f"{prefix}:live:queues", mapping={"plumbing": 2})  # type: ignore[misc]
    operators = {
        "anna": json.dumps({"state": "free", "since": NOW.isoformat()}),
        "boris": json.dumps({"state": "paused", "reason": "b-lunch", "since": NOW.isoformat()}),
    }
    await redis.hset(f"{prefix}:live:operators", mapping=operators)  # type: ignore[misc]
    await redis.set(f"{prefix}:live:heartbeat", datetime.now(UTC).isoformat())


Serve = Callable[[Settings, int], str]


@pytest.fixture
def base(serve: Serve, tmp_path: Path, redis_prefix: str) -> str:
    return serve(live_settings(tmp_path / "state", redis_prefix), PORT_BASE + 951)


def _csv(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    return list(csv.DictReader(io.StringIO(response.text)))


def test_a_tenant_user_sees_only_its_operators_readings_and_dispositions(
    database: Database, world: World, base: str
) -> None:
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant="dom-a")
    ) as api:
        agents = api.get("/api/agents")
        assert agents.status_code == 200, agents.text
        assert [agent["login"] for agent in agents.json()] == ["anna"]
        # Another tenant's operator: not there (pausing or reading them alike).
        for action in ("pause", "unpause", "logout", "login"):
            guessed = api.post(f"/api/agents/boris/{action}", json={"reason": "x"})
            assert guessed.status_code == 404, (action, guessed.text)
        assert api.get("/operator", params={"operator": "boris"}).status_code == 404
        assert api.get("/api/operator/stream", params={"operator": "boris"}).status_code == 404

        readings = api.get("/api/meter-readings", params={"payer": PAYER, "history": "true"})
        assert readings.status_code == 200, readings.text
        assert [row["id"] for row in readings.json()] == [world.a_reading]
        current = api.get("/api/meter-readings", params={"payer": PAYER})
        assert [row["value"] for row in current.json()] == [111]

        assert api.get(f"/api/calls/{world.b_call}/disposition").status_code == 404
        written = api.post(
            f"/api/calls/{world.b_call}/disposition",
            json={"category": "other", "note": "overwritten by A", "operator": "anna"},
        )
        assert written.status_code == 404, written.text
    with database.session() as session:
        state = session.query(AgentState).filter_by(sip_login="boris").one()
        assert state.paused and state.pause_reason == "b-lunch" and state.logged_in
        disposition = session.query(CallDisposition).filter_by(call_id=world.b_call).one()
        assert disposition.note == "B's note"

    # The centre's supervisor sees both tenants' operators and readings.
    with httpx.Client(
        base_url=base, headers=bearer_headers(database, "supervisor", tenant=None)
    ) as api:
        assert {agent["login"] for agent in api.get("/api/agents").json()} == {"anna", "boris"}
        readings = api.get("/api/meter-readings", params={"payer": PAYER, "history": "true"})
        assert {row["id"] for row in readings.json()} == {world.a_reading, world.b_reading}
        assert api.get(f"/api/calls/{world.b_call}/disposition").json()["category"] == "b-secret"


def test_a_tenant_operator_works_on_its_own_console_only(
    database: Database, world: World, base: str
) -> None:
    cookies, csrf = signed_in_operator(database, "anna-a", "anna", "dom-a")
    with httpx.Client(base_url=base, cookies=cookies, headers=csrf) as api:
        page = api.get("/operator")
        assert page.status_code == 200, page.text
        assert [agent["login"] for agent in api.get("/api/agents").json()] == ["anna"]
        assert api.get(f"/api/calls/{world.b_call}/disposition").status_code == 404
        own = api.post(
            f"/api/calls/{world.a_call}/disposition", json={"category": "other", "note": "ok"}
        )
        assert own.status_code == 200, own.text
        # The wallboard and reports are a supervisor's; a tenant's operator is refused them.
        assert api.get("/wallboard").status_code == 403
        assert api.get("/reports").status_code == 403


def test_reports_and_their_csv_add_up_only_the_readers_tenant(
    database: Database, world: World, base: str
) -> None:
    tenant = bearer_headers(database, "supervisor", tenant="dom-a")
    centre = bearer_headers(database, "supervisor", tenant=None)
    with httpx.Client(base_url=base) as http:
        page = http.get("/reports", headers=tenant)
        assert page.status_code == 200, page.text
        # No other tenant's name on a tenant's page (nor the filter listing them).
        assert "dom-b" not in page.text and 'id="report-tenant"' not in page.text
        queues = _csv(http.get("/reports/export.csv", headers=tenant))
        plumbing = next(row for row in queues if row["queue"] == "plumbing")
        assert plumbing["offered"] == "1"
        by_tenant = _csv(
            http.get("/reports/export.csv", params={"section": "tenants"}, headers=tenant)
        )
        assert [(row["tenant"], row["offered"]) for row in by_tenant] == [("dom-a", "1")]
        operators = _csv(
            http.get("/reports/export.csv", params={"section": "operators"}, headers=tenant)
        )
        # B's operator paused today (the shift report's pauses): not in A's report.
        assert not any("bor" in row["operator"].lower() for row in operators), operators
        # A filter naming B only narrows A's wall: nothing.
        for section in ("tenants", "queues"):
            rows = _csv(
                http.get(
                    "/reports/export.csv",
                    params={"section": section, "tenant": "dom-b"},
                    headers=tenant,
                )
            )
            assert all(row.get("offered") in (None, "", "0") for row in rows), rows
        narrowed = http.get("/reports", params={"tenant": "dom-b"}, headers=tenant)
        assert narrowed.status_code == 200 and "Boris" not in narrowed.text

        # The centre: the roll-up by tenant, and one tenant's report on request.
        rollup = _csv(
            http.get("/reports/export.csv", params={"section": "tenants"}, headers=centre)
        )
        assert sorted((row["tenant"], row["offered"]) for row in rollup) == [
            ("dom-a", "1"),
            ("dom-b", "2"),
        ]
        only_b = _csv(
            http.get(
                "/reports/export.csv",
                params={"section": "tenants", "tenant": "dom-b"},
                headers=centre,
            )
        )
        assert [(row["tenant"], row["offered"]) for row in only_b] == [("dom-b", "2")]
        centre_queues = _csv(http.get("/reports/export.csv", headers=centre))
        assert next(row for row in centre_queues if row["queue"] == "plumbing")["offered"] == "3"
        centre_ops = _csv(
            http.get("/reports/export.csv", params={"section": "operators"}, headers=centre)
        )
        assert any("bor" in row["operator"].lower() for row in centre_ops), centre_ops
        centre_page = http.get("/reports", headers=centre)
        assert 'id="report-tenant"' in centre_page.text and "dom-b" in centre_page.text


def _board_ids(snapshot: dict[str, object]) -> tuple[set[object], set[object], int]:
    calls = {call["call_id"] for call in snapshot["calls"]}  # type: ignore[attr-defined]
    names = {op["name"] for op in snapshot["operators"]}  # type: ignore[attr-defined]
    plumbing = next(q for q in snapshot["queues"] if q["queue"] == "plumbing")  # type: ignore[attr-defined]
    return calls, names, int(plumbing["waiting"])


async def test_the_wallboard_and_its_stream_show_a_tenant_only_its_live_state(
    database: Database, world: World, base: str, live: Redis, redis_prefix: str
) -> None:
    await _publish_live_state(live, redis_prefix, world)
    tenant = bearer_headers(database, "supervisor", tenant="dom-a")
    centre = bearer_headers(database, "supervisor", tenant=None)
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        mine = (await http.get("/api/wallboard", headers=tenant)).json()
        assert mine["live"] is True
        assert _board_ids(mine) == ({world.a_call}, {"Anna"}, 1)
        assert "b-lunch" not in json.dumps(mine)
        # Asking for B (or the centre) through the filter: an empty board, not B's.
        for other in ("dom-b", "centre"):
            narrowed = await http.get("/api/wallboard", params={"tenant": other}, headers=tenant)
            assert _board_ids(narrowed.json()) == (set(), set(), 0), other
        page = await http.get("/wallboard", headers=tenant)
        assert page.status_code == 200
        assert "79140000001" in page.text and "79140000002" not in page.text
        assert "Boris" not in page.text
        # No tenant filter (it would list the other tenants) on a tenant's board.
        assert 'id="wb-tenant"' not in page.text and "dom-b" not in page.text

        async with http.stream("GET", "/api/wallboard/stream", headers=tenant) as response:
            assert response.status_code == 200
            feed = SseEvents(response, "snapshot")
            first = await feed.next(timeout=10)
            assert _board_ids(first) == ({world.a_call}, {"Anna"}, 1)
            # B's caller hangs up and a new B event arrives: A's next picture is still A's.
            await live.publish(
                f"{redis_prefix}:events",
                json.dumps({"type": "call_queue", "call_id": world.b_call}),
            )
            again = await feed.next(timeout=10)
            assert _board_ids(again) == ({world.a_call}, {"Anna"}, 1)
        async with http.stream(
            "GET", "/api/wallboard/stream", params={"tenant": "dom-b"}, headers=tenant
        ) as response:
            assert _board_ids(await SseEvents(response, "snapshot").next(timeout=10)) == (
                set(),
                set(),
                0,
            )

        everything = (await http.get("/api/wallboard", headers=centre)).json()
        assert _board_ids(everything) == ({world.a_call, world.b_call}, {"Anna", "Boris"}, 2)
        centre_page = await http.get("/wallboard", params={"tenant": "dom-b"}, headers=centre)
        assert 'id="wb-tenant"' in centre_page.text
        assert "79140000002" in centre_page.text and "79140000001" not in centre_page.text
        only_b = await http.get("/api/wallboard", params={"tenant": "dom-b"}, headers=centre)
        assert _board_ids(only_b.json()) == ({world.b_call}, {"Boris"}, 1)


async def test_the_callback_list_stream_carries_only_the_tenants_entries(
    database: Database, world: World, base: str, live: Redis, redis_prefix: str
) -> None:
    cookies, csrf = signed_in_operator(database, "anna-a", "anna", "dom-a")
    async with (
        httpx.AsyncClient(base_url=base, timeout=10, cookies=cookies, headers=csrf) as http,
        http.stream("GET", "/callbacks/stream") as response,
    ):
        assert response.status_code == 200
        lists = await SseEvents(response, "lists").next(timeout=10)
        assert "79140000001" in lists["html"] or "9140000001" in lists["html"]
        assert "9140000002" not in lists["html"]


def test_centre_only_pages_stay_refused_to_a_tenant_supervisor(
    database: Database, world: World, base: str
) -> None:
    tenant = bearer_headers(database, "supervisor", tenant="dom-a")
    centre = bearer_headers(database, "supervisor", tenant=None)
    with httpx.Client(base_url=base) as http:
        for path in (
            "/admin/users",
            "/admin/tokens",
            "/admin/tenants",
            "/admin/tenants/dom-b",
            "/admin/security",
            "/incidents",
            "/flows",
        ):
            assert http.get(path, headers=tenant).status_code == 403, path
            assert http.get(path, headers=centre).status_code == 200, path
