"""The call log page (`/calls`) counts at most COUNT_CAP matches: past that it says "N+" and
still pages forward and back. SQLite and PostgreSQL, through the real app."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from call_router.db import Database
from call_router.models import Call
from call_router.settings import Settings
from dashboard.main import create_app
from dashboard.routes import pages
from tests.conftest import bearer_headers

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
CALLS = 130  # with a cap of 100 and 50 a page: 2 pages counted, a third found by paging


@pytest.fixture
def app(database: Database, tmp_path: Path) -> FastAPI:
    settings = Settings(state_dir=tmp_path / "state", country_code="RU")
    return create_app(settings, database, zone=ZoneInfo("UTC"))


@pytest.fixture
async def client(database: Database, app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers=bearer_headers(database),
    ) as http:
        yield http


def add_calls(db: Database, count: int, **fields: str) -> None:
    with db.session() as session:
        session.add_all(
            Call(
                linkedid=uuid.uuid4().hex,
                caller_number="+74951234567",
                caller_name=f"Resident {i:03d}",
                started_at=T0 + timedelta(minutes=i),
                **fields,
            )
            for i in range(count)
        )


def summary(html: str) -> tuple[str, str, str | None, str | None]:
    """(found text, page text, prev link, next link) of a call log page."""
    found = re.search(r'<span id="calls-found">([^<]*)</span>', html)
    pager = re.search(r'<nav class="pager">(.*?)</nav>', html, re.S)
    assert found and pager, html
    page = re.search(r"<span>([^<]*)</span>", pager.group(1))
    prev = re.search(r'rel="prev" href="([^"]*)"', pager.group(1))
    nxt = re.search(r'rel="next" href="([^"]*)"', pager.group(1))
    assert page
    return (
        found.group(1),
        page.group(1),
        prev.group(1).replace("&amp;", "&") if prev else None,
        nxt.group(1).replace("&amp;", "&") if nxt else None,
    )


def names(html: str) -> list[str]:
    return re.findall(r"<td>(Resident \d+)</td>", html)


async def test_past_the_cap_the_total_reads_n_plus_and_paging_still_works(
    database: Database,
    app: FastAPI,
    client: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pages, "COUNT_CAP", 100)
    add_calls(database, CALLS, queue="heating")
    add_calls(database, 3, queue="lift")

    async def get(url: str) -> str:
        response = await client.get(url)
        assert response.status_code == 200, response.text
        return response.text

    first = await get("/calls?queue=heating&lang=en")
    assert summary(first) == ("100+ calls found", "Page 1 of 2+", None, "?queue=heating&page=2")
    assert names(first) == [f"Resident {i:03d}" for i in range(129, 79, -1)]

    second = await get("/calls" + summary(first)[3])  # type: ignore[operator]
    assert summary(second) == (
        "100+ calls found",
        "Page 2 of 2+",
        "?queue=heating&page=1",
        "?queue=heating&page=3",
    ), "the cap is reached: there may be more, so the next link stays"
    assert names(second) == [f"Resident {i:03d}" for i in range(79, 29, -1)]

    # On the third page the count reaches past the end: exact again, no next link.
    third = await get("/calls" + summary(second)[3])  # type: ignore[operator]
    assert summary(third) == ("130 calls found", "Page 3 of 3", "?queue=heating&page=2", None)
    assert names(third) == [f"Resident {i:03d}" for i in range(29, -1, -1)]

    back = await get("/calls" + summary(third)[2])  # type: ignore[operator]
    assert names(back) == names(second)

    # Each row links to its call's page (the route's own path).
    links = re.findall(r'<td><a href="([^"]+)"><time', back)
    assert len(links) == 50
    with database.session() as session:
        newest = session.query(Call).filter_by(caller_name="Resident 079").one()
    assert links[0] == app.url_path_for("call_page", call_id=newest.id)
    assert "Resident 079" in await get(links[0])

    # Under the cap nothing changes: an exact total, a last page, out-of-range pages clamp.
    lift = await get("/calls?queue=lift&lang=en")
    assert summary(lift) == ("3 calls found", "Page 1 of 1", None, None)
    beyond = await get("/calls?queue=lift&page=7&lang=en")
    assert summary(beyond) == ("3 calls found", "Page 1 of 1", None, None)

    russian = await get("/calls?queue=heating&lang=ru")
    assert "Найдено звонков: 100+" in russian and "Страница 1 из 2+" in russian


async def test_the_api_total_stays_exact_and_opt_in(
    database: Database, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "COUNT_CAP", 100)
    add_calls(database, CALLS, queue="heating")

    plain = await client.get("/api/calls", params={"queue": "heating", "limit": 10})
    counted = await client.get(
        "/api/calls", params={"queue": "heating", "limit": 10, "with_total": "true"}
    )

    assert plain.status_code == counted.status_code == 200
    assert "x-total-count" not in plain.headers
    assert counted.headers["x-total-count"] == str(CALLS)


async def test_filter_menus_are_reread_after_their_ttl(
    database: Database, app: FastAPI, client: httpx.AsyncClient
) -> None:
    clock = [1000.0]
    app.state.call_log_options = pages.FilterOptions(clock=lambda: clock[0])
    add_calls(database, 1, queue="heating")

    def menu(html: str) -> list[str]:
        select = re.search(r'<select name="queue">(.*?)</select>', html, re.S)
        assert select, html
        return re.findall(r'<option value="([^"]+)"', select.group(1))

    assert menu((await client.get("/calls")).text) == ["heating"]
    add_calls(database, 1, queue="lift")
    clock[0] += pages.OPTIONS_TTL_SECONDS - 1
    assert menu((await client.get("/calls")).text) == ["heating"], "still the remembered list"
    clock[0] += 1
    assert menu((await client.get("/calls")).text) == ["heating", "lift"]
