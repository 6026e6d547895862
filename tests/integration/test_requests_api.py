"""`/api/requests` and `/api/crews` through the real app (httpx + ASGI transport) on real
SQLite and PostgreSQL: roles, the tenant wall, optimistic locking, bad input, CSV safety."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import update

from call_router import accounts, tenants
from call_router.db import Database
from call_router.models import Call
from call_router.request_models import ServiceRequest
from call_router.service_requests import id_of
from call_router.settings import Settings
from dashboard.main import create_app
from tests.integration.conftest import signed_in_crew

HOSTILE = '=HYPERLINK("http://evil.example","x")'
Client = Callable[..., httpx.AsyncClient]


def _token(db: Database, role: str, tenant: str | None = None) -> dict[str, str]:
    with db.session() as session:
        token, _row = accounts.create_token(
            session,
            role,
            name=f"{role}-{uuid.uuid4().hex[:6]}",
            now=datetime.now(UTC),
            tenant=tenant,
        )
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def app_client(database: Database, tmp_path: Path) -> AsyncIterator[Client]:
    app = create_app(Settings(state_dir=tmp_path / "state"), database, zone=ZoneInfo("UTC"))
    clients: list[httpx.AsyncClient] = []

    def make(
        role: str = "supervisor",
        tenant: str | None = None,
        *,
        signed_in: tuple[dict[str, str], dict[str, str]] | None = None,
    ) -> httpx.AsyncClient:
        """A client with a `role` API token, or with a signed-in account's cookie and CSRF."""
        cookies, headers = signed_in or ({}, _token(database, role, tenant))
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://dashboard.test",
            headers=headers,
            cookies=cookies,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


BODY = {
    "category": "heating",
    "street": "Lenina St",
    "house": "5",
    "flat": "12",
    "district": "North",
    "description": "<script>alert(1)</script> no heating",
    "caller_number": "+79001112233",
    "caller_name": HOSTILE,
}


async def test_operator_creates_dispatcher_assigns_crew_reports(
    app_client: Client, database: Database
) -> None:
    # A crew-role API token works as no crew: it reads requests, it moves none.
    operator, dispatcher, crew_token = (
        app_client("operator"),
        app_client("dispatcher"),
        app_client("crew"),
    )
    made = await operator.post("/api/requests", json=BODY)
    assert made.status_code == 201, made.text
    number = made.json()["number"]
    again = await operator.post("/api/requests", json={**BODY, "street": "lenina st."})
    assert again.status_code == 200 and again.json()["attached"] is True
    assert again.json()["number"] == number

    assert (await crew_token.post("/api/requests", json=BODY)).status_code == 403
    added = await dispatcher.post(
        "/api/crews", json={"name": "Heat N", "categories": ["heating"], "districts": ["North"]}
    )
    assert added.status_code == 201, added.text
    assert (
        await operator.post(f"/api/requests/{number}/assign", json={"crew_id": 1})
    ).status_code == 403
    assigned = await dispatcher.post(
        f"/api/requests/{number}/assign", json={"crew_id": added.json()["id"]}
    )
    assert assigned.status_code == 200, assigned.text
    version = assigned.json()["version"]
    crew = app_client(signed_in=signed_in_crew(database, "brigade", added.json()["id"]))
    refused = await crew_token.post(
        f"/api/requests/{number}/status", json={"state": "on_the_way", "version": version}
    )
    assert refused.status_code == 403, refused.text

    # The crew may report its work, not close or reassign it.
    assert (
        await crew.post(f"/api/requests/{number}/status", json={"state": "closed"})
    ).status_code == 403
    moved = await crew.post(
        f"/api/requests/{number}/status", json={"state": "on_the_way", "version": version}
    )
    assert moved.status_code == 200, moved.text
    # A change based on the version read before the crew's is refused, not applied.
    stale = await dispatcher.post(
        f"/api/requests/{number}/status", json={"state": "cannot_fix", "version": version}
    )
    assert stale.status_code == 409 and stale.json()["detail"]["code"] == "conflict"
    bad_move = await crew.post(f"/api/requests/{number}/status", json={"state": "done"})
    assert bad_move.status_code == 409 and bad_move.json()["detail"]["code"] == "transition"

    detail = (await dispatcher.get(f"/api/requests/{number}")).json()
    assert detail["state"] == "on_the_way"
    assert [h["action"] for h in detail["history"]] == [
        "created", "reported_again", "assigned", "status",
    ]  # fmt: skip
    assert detail["history"][-1]["actor"] == "brigade"
    listed = (await crew_token.get("/api/requests", params={"state": "on_the_way"})).json()
    assert [r["number"] for r in listed] == [number]


async def test_bad_input_is_refused_clearly(app_client: Client) -> None:
    client = app_client()
    for body, status in (
        ({**BODY, "category": "nope"}, 422),
        ({**BODY, "description": "x" * 4001}, 422),
        ({**BODY, "street": ""}, 422),
        ({**BODY, "lat": 100}, 422),
        ({**BODY, "call_id": 2**40}, 422),
        ({**BODY, "call_id": 12345}, 404),
    ):
        answer = await client.post("/api/requests", json=body)
        assert answer.status_code == status, (body, answer.text)
    unknown = await client.post("/api/requests", json={**BODY, "category": "nope"})
    assert unknown.json()["detail"]["code"] == "unknown_category"
    for path in (
        "/api/requests/1",
        "/api/requests/99999",
        "/api/requests/abc",
        "/api/requests/" + "9" * 40,
        "/api/requests/999999999999",  # a number's shape, past the id column's range
    ):
        assert (await client.get(path)).status_code == 404, path
    # Found by the API fuzzer: such a number in a bulk assignment is refused, not a crash.
    crew = (await client.post("/api/crews", json={"name": "Any crew"})).json()["id"]
    picks = {"crew_id": crew, "requests": [{"number": "999999999999"}]}
    bulk = await client.post("/api/requests/assign", json=picks)
    assert bulk.status_code == 200, bulk.text
    assert [r["code"] for r in bulk.json()["refused"]] == ["not_found"]
    assert (await client.get("/api/requests")).status_code == 200
    assert (await client.get("/api/requests", params={"limit": 0})).status_code == 422
    anonymous = httpx.AsyncClient(transport=client._transport, base_url="http://dashboard.test")
    async with anonymous:
        assert (await anonymous.get("/api/requests")).status_code == 401


async def test_csv_export_defuses_formulas(app_client: Client) -> None:
    client = app_client()
    assert (await client.post("/api/requests", json=BODY)).status_code == 201
    answer = await client.get("/api/requests/export.csv")
    assert answer.status_code == 200
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert rows[0]["caller_name"] == "'" + HOSTILE
    assert rows[0]["description"] == BODY["description"]


async def test_tenant_wall_on_requests(app_client: Client, database: Database) -> None:
    with database.session() as session:
        tenants.add_tenant(session, "Company A", slug="a")
        tenant_b = tenants.add_tenant(session, "Company B", slug="b")
        call = Call(
            linkedid=uuid.uuid4().hex,
            caller_number="+7900",
            started_at=datetime.now(UTC),
            tenant_id=tenant_b.id,
        )
        session.add(call)
        session.flush()
        b_call = call.id
    a, b, centre = app_client("supervisor", "a"), app_client("operator", "b"), app_client()
    mine = await a.post("/api/requests", json=BODY)
    assert mine.status_code == 201
    # Same address in another tenant: its own request, not a duplicate of A's.
    theirs = await b.post("/api/requests", json={**BODY, "call_id": b_call})
    assert theirs.status_code == 201 and theirs.json()["source"] == "phone"
    # A's staff cannot see, change or link B's request, nor attach to B's call.
    number_b = theirs.json()["number"]
    assert (await a.get(f"/api/requests/{number_b}")).status_code == 404
    assert (
        await a.post(f"/api/requests/{number_b}/status", json={"state": "closed"})
    ).status_code == 404
    assert (await a.post("/api/requests", json={**BODY, "call_id": b_call})).status_code == 404
    assert [r["number"] for r in (await a.get("/api/requests")).json()] == [mine.json()["number"]]
    # By the number column: a bare request number ("1042") can be part of a timestamp.
    a_csv = (await a.get("/api/requests/export.csv")).text
    assert [r["number"] for r in csv.DictReader(io.StringIO(a_csv))] == [mine.json()["number"]]
    assert len((await centre.get("/api/requests")).json()) == 2


async def test_a_call_prefills_the_new_request(app_client: Client, database: Database) -> None:
    with database.session() as session:
        first = Call(
            linkedid=uuid.uuid4().hex,
            caller_number="+79001112233",
            caller_name="Anna",
            started_at=datetime.now(UTC),
            intent="heating",
        )
        second = Call(
            linkedid=uuid.uuid4().hex,
            caller_number="+79001112233",
            started_at=datetime.now(UTC),
            intent="lift",
        )
        session.add_all([first, second])
        session.flush()
        ids = (first.id, second.id)
    operator = app_client("operator")
    fresh = (await operator.get("/api/requests/suggest", params={"call_id": ids[0]})).json()
    assert fresh["category"] == "heating" and fresh["last_address"] is None
    made = await operator.post("/api/requests", json={**BODY, "call_id": ids[0]})
    assert made.status_code == 201 and made.json()["source"] == "phone"
    later = (await operator.get("/api/requests/suggest", params={"call_id": ids[1]})).json()
    assert later["category"] == "lift"
    assert later["last_address"] == {
        "street": "Lenina St",
        "house": "5",
        "flat": "12",
        "district": "North",
    }
    assert [r["number"] for r in later["open_requests"]] == [made.json()["number"]]
    missing = await operator.get("/api/requests/suggest", params={"call_id": 999999})
    assert missing.status_code == 404
    # The prefill shows the call's caller: not to those who open no call.
    for role in ("dispatcher", "crew"):
        refused = await app_client(role).get("/api/requests/suggest", params={"call_id": ids[0]})
        assert refused.status_code == 403, (role, refused.text)


async def test_a_crew_moves_only_its_own_crews_jobs(app_client: Client, database: Database) -> None:
    # Found by playing attacker (2026-12-06): any crew account could report, or close as
    # cannot_fix, another crew's job and a request nobody was sent to yet.
    office = app_client("supervisor")
    ours, theirs = [
        (await office.post("/api/crews", json={"name": name, "categories": ["heating"]})).json()
        for name in ("A", "B")
    ]
    their_job = (await office.post("/api/requests", json=BODY)).json()["number"]
    assigned = await office.post(
        f"/api/requests/{their_job}/assign", json={"crew_id": theirs["id"]}
    )
    assert assigned.status_code == 200, assigned.text
    unassigned = (await office.post("/api/requests", json={**BODY, "house": "7"})).json()["number"]
    crew = app_client(signed_in=signed_in_crew(database, "crew-a", ours["id"]))

    assert (await crew.get(f"/api/requests/{their_job}")).status_code == 200  # it may read
    for number in (their_job, unassigned):
        for state in ("on_the_way", "cannot_fix"):
            moved = await crew.post(f"/api/requests/{number}/status", json={"state": state})
            assert moved.status_code == 403, (number, state, moved.text)
    for number, state in ((their_job, "assigned"), (unassigned, "new")):
        detail = (await office.get(f"/api/requests/{number}")).json()
        assert detail["state"] == state and detail["history"][-1]["actor"] != "crew-a"
    # Its own crew's job: reported as before.
    mine = await office.post(f"/api/requests/{unassigned}/assign", json={"crew_id": ours["id"]})
    assert mine.status_code == 200, mine.text
    moved = await crew.post(f"/api/requests/{unassigned}/status", json={"state": "on_the_way"})
    assert moved.status_code == 200, moved.text


async def test_overdue_requests_escalate_to_the_wallboard(
    app_client: Client, database: Database
) -> None:
    """A request nobody finished in time is the dispatchers' first (their list marks it), then
    the supervisors': the wallboard alerts for both, a tenant's board for its own only."""
    with database.session() as session:
        tenants.add_tenant(session, "Company A", slug="a")
    supervisor, dispatcher = app_client(), app_client("dispatcher")
    late, ignored = [
        (await dispatcher.post("/api/requests", json={**BODY, "house": house})).json()["number"]
        for house in ("31", "32")
    ]
    assert (await app_client("supervisor", "a").post("/api/requests", json=BODY)).is_success
    now = datetime.now(UTC)
    with database.session() as session:  # a 24-hour SLA: just missed, and missed long ago
        for number, made in ((late, now - timedelta(hours=25)), (ignored, now - timedelta(days=3))):
            session.execute(
                update(ServiceRequest)
                .where(ServiceRequest.id == id_of(number))
                .values(created_at=made, sla_deadline=made + timedelta(hours=24))
            )
    overdue = (await dispatcher.get("/api/requests", params={"overdue": "true"})).json()
    assert {r["number"]: r["escalated_to"] for r in overdue} == {
        late: "dispatcher",
        ignored: "supervisor",
    }
    board = (await supervisor.get("/api/wallboard", params={"lang": "en"})).json()
    alerts = {a["kind"]: a for a in board["alerts"]}
    assert alerts["requests_overdue"]["value"] == 1, board["alerts"]
    assert alerts["requests_escalated"]["value"] == 1
    page = (await supervisor.get("/wallboard", params={"lang": "en"})).text
    assert "1 overdue service requests escalated to the supervisor" in page
    # Company A's own board: its request is on time, the centre's are not its business.
    walled = (await app_client("supervisor", "a").get("/api/wallboard")).json()
    assert not [a for a in walled["alerts"] if a["kind"].startswith("requests_")]
