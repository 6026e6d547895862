"""Dates at the calendar's ends, from outside, through the real app on SQLite and PostgreSQL:
a clear 400/422, never a 500 (call_router/date_range.py).

Found by playing attacker (2026-12-06): `datetime` overflows a day after 9999-12-31 or when an
offset moves year 1 across midnight, and each of these answered 500 (the Open311 list to anyone,
without signing in)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import accounts
from call_router.db import Database
from call_router.settings import Settings
from dashboard.main import create_app

BASE = "http://dashboard.test"


@pytest.fixture
async def app(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(state_dir=tmp_path / "state", ami_port=1, redis_url="redis://127.0.0.1:1/0")
    with database.session() as session:
        token, _ = accounts.create_token(
            session, "supervisor", name=f"sup-{uuid.uuid4().hex[:6]}", now=datetime.now(UTC)
        )
    transport = httpx.ASGITransport(app=create_app(settings, database, zone=ZoneInfo("UTC")))
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


@pytest.mark.parametrize("fmt", ["json", "xml"])
@pytest.mark.parametrize(
    "query",
    [
        "end_date=0001-01-01T00:00:00Z",
        "start_date=0001-01-01T00:00:00%2B05:00",
        "end_date=9999-12-31T23:59:59-12:00",
    ],
)
async def test_the_public_open311_list_refuses_them(
    app: httpx.AsyncClient, fmt: str, query: str
) -> None:
    answer = await app.get(f"/open311/v2/requests.{fmt}?{query}", headers={"Authorization": ""})
    assert answer.status_code == 400, answer.text
    assert "between the years" in answer.text


@pytest.mark.parametrize(
    "path",
    [
        "/calls/export.csv?date_to=9999-12-31",
        "/reports?date_to=0001-01-01",
        "/reports?date_to=9999-12-31",
        "/api/reports/abandoned?date_to=9999-12-31",
        "/api/reports/agents?date_to=9999-12-31",
        "/api/reports/requests?date_to=9999-12-31",
        "/meters?month=9999-12",
        "/api/calls?since=0001-01-01T00:00:00%2B05:00",
        "/api/calls?until=9999-12-31T23:59:59-12:00",
    ],
)
async def test_staff_pages_and_the_api_refuse_them(app: httpx.AsyncClient, path: str) -> None:
    answer = await app.get(path)
    assert answer.status_code == 422, (answer.status_code, answer.text[:300])


async def test_the_call_log_page_says_the_date_is_wrong(app: httpx.AsyncClient) -> None:
    # The page keeps its form and says so, as for any other bad date.
    good = await app.get("/calls?date_to=2026-12-31")
    bad = await app.get("/calls?date_to=9999-12-31")
    assert good.status_code == bad.status_code == 200, bad.text[:300]
    assert 'class="error"' not in good.text and 'class="error"' in bad.text
