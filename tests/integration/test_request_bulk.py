"""Bulk assignment and the request report through the real app on real SQLite and PostgreSQL:
several requests to one crew in one action (API and the dispatcher's page, with CSRF), a
request changed meanwhile is named and left alone while the rest are assigned; the report's
figures, its CSV (formulas defused), its page in both languages, and the tenant wall."""

from __future__ import annotations

import contextlib
import csv
import io
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import accounts, request_assignment, request_crews, tenants
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.db import Database
from call_router.settings import Settings
from dashboard.main import create_app
from tests.integration.test_dashboard_auth import BASE, PASSWORD, login_form_token
from tests.integration.test_requests_api import _token

Client = Callable[..., httpx.AsyncClient]


@contextlib.asynccontextmanager
async def app_clients(database: Database, settings: Settings) -> AsyncIterator[Client]:
    """`make(role, tenant)`: a client of one app; with a role, an API token of that role;
    without, no credentials (sign in through /login)."""
    app = create_app(settings, database, zone=ZoneInfo("UTC"))
    clients: list[httpx.AsyncClient] = []

    def client(role: str | None = None, tenant: str | None = None) -> httpx.AsyncClient:
        headers = _token(database, role, tenant) if role else {}
        made = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=BASE, headers=headers
        )
        clients.append(made)
        return made

    try:
        yield client
    finally:
        for made in clients:
            await made.aclose()


@pytest.fixture
async def make(database: Database, tmp_path: Path) -> AsyncIterator[Client]:
    settings = Settings(state_dir=tmp_path / "state", ami_port=1, redis_url="redis://127.0.0.1:1/0")
    async with app_clients(database, settings) as client:
        yield client


def _requests(db: Database, count: int, **extra: object) -> list[str]:
    numbers = []
    with db.session() as session:
        for i in range(count):
            made = store.create_request(
                session,
                store.NewRequest(category="heating", street="Lenina", house=str(i + 1)),
                categories=life.load_categories(),
                actor="op",
                **extra,  # type: ignore[arg-type]
            )
            numbers.append(made.request.number)
    return numbers


def _crew(db: Database, name: str = "Heat N", tenant_id: int | None = None) -> int:
    with db.session() as session:
        crew = request_crews.add_crew(
            session,
            name,
            categories=["heating"],
            districts=[],
            known_categories=life.load_categories(),
            tenant_id=tenant_id,
        )
        return crew.id


async def test_bulk_assign_through_the_api(make: Client, database: Database) -> None:
    numbers = _requests(database, 4)
    crew = _crew(database)
    dispatcher = make("dispatcher")
    # Someone changes the third after the dispatcher read it at version 1.
    with database.session() as session:
        store.change_state(session, numbers[2], "not_our_responsibility", actor="other")
    picks = [{"number": n, "version": 1} for n in numbers]
    body = {"requests": [*picks, picks[0]], "crew_id": crew, "note": "morning round"}
    assert (await make("operator").post("/api/requests/assign", json=body)).status_code == 403
    answer = await dispatcher.post("/api/requests/assign", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert [r["number"] for r in result["assigned"]] == [numbers[0], numbers[1], numbers[3]]
    assert [(r["number"], r["code"]) for r in result["refused"]] == [(numbers[2], "conflict")]
    assert "changed since you read it" in result["refused"][0]["message"]
    with database.session() as session:
        states = [store.get_request(session, n).state for n in numbers]
        changed = store.get_request(session, numbers[2])
        assert [e.action for e in changed.events] == ["created", "status"]
    assert states == ["assigned", "assigned", "not_our_responsibility", "assigned"]

    unknown = await dispatcher.post(
        "/api/requests/assign", json={"requests": [{"number": numbers[1]}], "crew_id": 99999}
    )
    assert unknown.status_code == 404 and unknown.json()["detail"]["code"] == "not_found"
    for bad in (
        {"requests": [], "crew_id": crew},
        {"requests": [{"number": "1; DROP"}], "crew_id": crew},
        {"requests": [{"number": "1001"}] * 201, "crew_id": crew},
    ):
        assert (await dispatcher.post("/api/requests/assign", json=bad)).status_code == 422
    # The old one-at-a-time route still works.
    again = await dispatcher.post(f"/api/requests/{numbers[0]}/assign", json={"crew_id": crew})
    assert again.status_code == 200


async def test_bulk_assign_behind_the_wall(make: Client, database: Database) -> None:
    with database.session() as session:
        tenant_b = tenants.add_tenant(session, "Company B", slug="b").id
    mine = _requests(database, 1)
    theirs = _requests(database, 1, tenant_id=tenant_b)
    crew_b = _crew(database, "B crew", tenant_b)
    b_dispatcher = make("dispatcher", "b")
    picks = [{"number": mine[0]}, {"number": theirs[0]}]
    answer = await b_dispatcher.post(
        "/api/requests/assign", json={"requests": picks, "crew_id": crew_b}
    )
    result = answer.json()
    assert [r["number"] for r in result["assigned"]] == [theirs[0]]
    assert [(r["number"], r["code"]) for r in result["refused"]] == [(mine[0], "not_found")]
    with database.session() as session:
        assert store.get_request(session, mine[0]).state == "new"


async def test_bulk_assign_from_the_dispatch_page(make: Client, database: Database) -> None:
    numbers = _requests(database, 3)
    crew = _crew(database)
    with database.session() as session:
        accounts.create_user(session, "disp", PASSWORD, "dispatcher", now=datetime.now(UTC))
    http = make()
    form_csrf = await login_form_token(http)
    await http.post(
        "/login",
        data={"username": "disp", "password": PASSWORD, "csrf_token": form_csrf, "next": "/"},
    )
    page = (await http.get("/dispatch")).text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert csrf and 'id="bulk-assign"' in page
    ticks = re.findall(r'name="pick" value="([0-9]+:[0-9]+)"', page)
    assert sorted(ticks) == sorted(f"{n}:1" for n in numbers)
    with database.session() as session:  # changed while the page was open
        store.change_state(session, numbers[1], "closed", actor="other")
    form = {"crew_id": str(crew), "pick": ticks}
    assert (await http.post("/dispatch/assign", data=form)).status_code == 403  # no CSRF
    done = await http.post("/dispatch/assign", data={**form, "csrf_token": csrf[1]})
    assert done.status_code == 303
    message = (await http.get(done.headers["location"])).text
    in_page_order = [t.split(":")[0] for t in ticks if not t.startswith(numbers[1])]
    assert f"Assigned to Heat N: {', '.join(in_page_order)}." in message
    assert f"Not assigned: {numbers[1]} (the request changed since you read it" in message
    with database.session() as session:
        assert [store.get_request(session, n).state for n in numbers] == [
            "assigned", "closed", "assigned",
        ]  # fmt: skip


async def test_request_report(make: Client, database: Database) -> None:
    with database.session() as session:
        tenant_b = tenants.add_tenant(session, "Company B", slug="b").id
    crew = _crew(database)
    cats = life.load_categories()
    start = datetime.now(UTC) - timedelta(days=2)
    with database.session() as session:
        made = []
        for i, district in enumerate(("North", "North", '=HYPERLINK("http://x")')):
            made.append(
                store.create_request(
                    session,
                    store.NewRequest(
                        category="heating", street="Lenina", house=str(i), district=district
                    ),
                    categories=cats,
                    actor="op",
                    now=start,
                ).request.number
            )
        request_assignment.assign(session, made[0], crew, actor="d", now=start + timedelta(hours=1))
        for state, hours in (("in_progress", 2), ("done", 5), ("new", 6)):
            store.change_state(
                session, made[0], state, actor="c", now=start + timedelta(hours=hours)
            )
        request_assignment.assign(session, made[0], crew, actor="d", now=start + timedelta(hours=7))
        store.change_state(
            session, made[0], "in_progress", actor="c", now=start + timedelta(hours=8)
        )
        store.change_state(session, made[0], "done", actor="c", now=start + timedelta(hours=9))
        request_assignment.assign(session, made[1], crew, actor="d", now=start + timedelta(hours=3))
        store.create_request(
            session,
            store.NewRequest(category="lift", street="Mira", house="1"),
            categories=cats,
            actor="op",
            tenant_id=tenant_b,
            now=start,
        )
    supervisor = make("supervisor")
    assert (await make("operator").get("/api/reports/requests")).status_code == 403
    assert (await make("crew").get("/reports/requests")).status_code == 403
    report = (await supervisor.get("/api/reports/requests")).json()
    total = report["total"]
    assert (total["requests"], total["assigned"], total["finished"]) == (4, 2, 1)
    assert (total["assign_hours_mean"], total["assign_hours_median"]) == (2.0, 2.0)
    assert total["close_hours_mean"] == 9.0
    assert (total["reopened"], total["reopened_rate"]) == (1, 1.0)
    by_crew = {g["key"]: g["requests"] for g in report["by_crew"]}
    assert by_crew == {"Heat N": 2, "—": 2}
    assert {g["key"]: g["requests"] for g in report["by_category"]} == {"heating": 3, "lift": 1}

    # Behind the wall: company B's supervisor sees its own request only.
    theirs = (await make("supervisor", "b").get("/api/reports/requests")).json()
    assert theirs["total"]["requests"] == 1 and theirs["by_crew"][0]["key"] == "—"

    sheet = await supervisor.get("/reports/requests.csv")
    assert sheet.status_code == 200 and "attachment" in sheet.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(sheet.text)))
    districts = [r["key"] for r in rows if r["group"] == "district"]
    assert '\'=HYPERLINK("http://x")' in districts and "North" in districts
    assert next(r for r in rows if r["group"] == "total")["reopened_rate"] == "1.0"

    english = (await supervisor.get("/reports/requests", params={"lang": "en"})).text
    assert "Service requests report" in english and 'id="rr-crew"' in english
    assert "=HYPERLINK(&#34;http://x&#34;)" in english or "=HYPERLINK(&quot;" in english
    russian = (await supervisor.get("/reports/requests", params={"lang": "ru"})).text
    assert "Отчёт по заявкам" in russian and "По бригадам" in russian
    assert (
        await supervisor.get("/api/reports/requests", params={"date_from": "yesterday"})
    ).status_code == 422
