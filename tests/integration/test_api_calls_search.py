"""`/api/calls` search, paging and speech fields, the call log CSV and the reports' operator
table, through the real app (httpx + ASGI transport) on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import accounts, call_search
from call_router.accounts import SUPERVISOR
from call_router.db import Database
from call_router.models import Call
from call_router.settings import Settings
from dashboard.main import create_app

T0 = datetime(2026, 11, 10, 9, 0, tzinfo=UTC)
NUMBER = "+74959010001"
OTHER = "+74959010002"
HOSTILE = '=HYPERLINK("http://x","<script>alert(1)</script>")'


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state", recordings_dir=tmp_path / "recordings", country_code="RU"
    )


@pytest.fixture
async def client(database: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database, zone=ZoneInfo("UTC"))
    # A supervisor's API token (what `hotline tokens create --role supervisor` makes).
    with database.session() as session:
        token, _ = accounts.create_token(session, SUPERVISOR, name="search-test", now=T0)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers={"Authorization": f"Bearer {token}"},
    ) as http:
        yield http


def add_calls(db: Database, rows: list[dict[str, Any]]) -> list[int]:
    with db.session() as session:
        calls = [Call(linkedid=uuid.uuid4().hex, **row) for row in rows]
        session.add_all(calls)
        session.flush()
        return [c.id for c in calls]


def next_link(response: httpx.Response) -> str | None:
    match = re.fullmatch(r'<([^>]+)>; rel="next"', response.headers.get("link", ""))
    return match.group(1) if match else None


async def test_speech_fields_and_a_relative_utterance(
    client: httpx.AsyncClient, database: Database, settings: Settings
) -> None:
    inside = settings.recordings_dir / "utterances" / "1700000000.5-1.wav"
    [spoken, outside, keypad] = add_calls(
        database,
        [
            dict(caller_number=NUMBER, started_at=T0, transcript=HOSTILE, intent="water",
                 intent_confidence=0.87, utterance_path=str(inside)),
            dict(caller_number=NUMBER, started_at=T0 + timedelta(minutes=1),
                 utterance_path="/etc/passwd"),
            dict(caller_number=OTHER, started_at=T0 + timedelta(minutes=2)),
        ],
    )  # fmt: skip

    detail = (await client.get(f"/api/calls/{spoken}")).json()
    assert detail["transcript"] == HOSTILE
    assert detail["intent"] == "water" and detail["intent_confidence"] == pytest.approx(0.87)
    assert detail["utterance"] == "utterances/1700000000.5-1.wav"
    assert "utterance_path" not in detail
    assert (await client.get(f"/api/calls/{outside}")).json()["utterance"] is None
    listed = {c["id"]: c for c in (await client.get("/api/calls")).json()}
    assert listed[spoken]["utterance"] == "utterances/1700000000.5-1.wav"
    assert listed[keypad]["transcript"] is None and listed[keypad]["utterance"] is None
    assert str(settings.recordings_dir) not in (await client.get("/api/calls")).text


async def test_filters_match_the_call_log_form(
    client: httpx.AsyncClient, database: Database
) -> None:
    ids = add_calls(
        database,
        [
            dict(caller_number=NUMBER, started_at=T0, queue="plumbing", intent="water",
                 outcome="answered", operator="Anna"),
            dict(caller_number=NUMBER, started_at=T0 + timedelta(days=1), queue="heating",
                 intent="heating", outcome="abandoned_in_queue"),
            dict(caller_number=OTHER, started_at=T0 + timedelta(days=2), queue="plumbing",
                 intent="water", outcome="answered", operator="Boris"),
        ],
    )  # fmt: skip

    async def found(**params: str) -> list[int]:
        response = await client.get("/api/calls", params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()]

    assert await found(caller="8 495 901-00-01") == [ids[1], ids[0]]
    assert await found(queue="plumbing") == [ids[2], ids[0]]
    assert await found(intent="heating") == [ids[1]]
    assert await found(outcome="answered", operator="Boris") == [ids[2]]
    day2 = T0 + timedelta(days=1)
    assert await found(since=day2.isoformat(), until=(day2 + timedelta(days=1)).isoformat()) == [
        ids[1]
    ]
    assert await found(since=day2.isoformat(), queue="plumbing") == [ids[2]]
    assert await found(caller="not a number") == []


async def test_cursor_pages_walk_every_call_once_with_a_total(
    client: httpx.AsyncClient, database: Database
) -> None:
    # Two calls share a start time: the id breaks the tie, so neither is skipped or repeated.
    starts = [T0 + timedelta(minutes=m) for m in (0, 1, 1, 2, 3, 4, 5)]
    ids = add_calls(
        database, [dict(caller_number=NUMBER, started_at=at, queue="lift") for at in starts]
    )
    add_calls(database, [dict(caller_number=OTHER, started_at=T0, queue="duty")])
    expected = [i for _, i in sorted(zip(starts, ids, strict=True), reverse=True)]

    first = await client.get("/api/calls", params={"queue": "lift", "limit": 3, "with_total": 1})
    assert first.headers["x-total-count"] == "7"
    seen = [c["id"] for c in first.json()]
    url = next_link(first)
    pages = 1
    while url is not None:
        assert "queue=lift" in url and "limit=3" in url
        page = await client.get(url)
        assert page.status_code == 200, page.text
        assert "x-total-count" not in page.headers
        seen += [c["id"] for c in page.json()]
        url = next_link(page)
        pages += 1
    assert seen == expected
    assert pages == 3

    offset = await client.get("/api/calls", params={"queue": "lift", "limit": 3, "offset": 3})
    assert [c["id"] for c in offset.json()] == expected[3:6]
    with database.session() as session:
        lift = call_search.CallFilter(queue="lift")
        assert call_search.count_calls(session, lift, cap=5) == 5
        assert call_search.count_calls(session, lift, cap=50) == 7
        assert call_search.count_calls(session, call_search.CallFilter(caller="junk"), cap=5) == 0
        assert call_search.distinct_values(session, "queue") == ["duty", "lift"]


@pytest.mark.parametrize("params", [{"cursor": "bm90IGEgY3Vyc29y"}, {"cursor": "!!"}])
async def test_a_bad_cursor_is_a_clear_error(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get("/api/calls", params=params)
    assert response.status_code == 422
    assert "cursor" in response.text


async def test_an_offset_past_every_row_is_a_clear_error(client: httpx.AsyncClient) -> None:
    """Found by the API fuzzer: an OFFSET beyond PostgreSQL's bigint was a 500."""
    response = await client.get("/api/calls", params={"offset": 10**19})
    assert response.status_code == 422
    assert "offset" in response.text


async def test_csv_export_has_speech_columns_defused(
    client: httpx.AsyncClient, database: Database
) -> None:
    add_calls(
        database,
        [dict(caller_number=NUMBER, started_at=T0, transcript=HOSTILE, intent="water",
              intent_confidence=0.5)],
    )  # fmt: skip

    response = await client.get("/calls/export.csv", params={"caller": NUMBER})
    assert response.status_code == 200
    [row] = list(csv.DictReader(io.StringIO(response.text)))
    assert row["transcript"] == "'" + HOSTILE
    assert row["intent"] == "water" and row["intent_confidence"] == "0.500"


async def test_reports_show_and_export_operators(
    client: httpx.AsyncClient, database: Database
) -> None:
    add_calls(
        database,
        [dict(caller_number=NUMBER, started_at=T0, queue="plumbing", queue_joined_at=T0,
              answered_at=T0 + timedelta(seconds=5), ended_at=T0 + timedelta(seconds=65),
              operator=HOSTILE, outcome="answered")],
    )  # fmt: skip
    params = {"date_from": "2026-11-10", "date_to": "2026-11-10"}

    page = await client.get("/reports", params=params)
    assert page.status_code == 200
    assert 'id="report-operators"' in page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;" in page.text
    exported = await client.get("/reports/export.csv", params={**params, "section": "operators"})
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:3] == ["operator", "answered", "talk_seconds"]
    assert rows[1][:3] == ["'" + HOSTILE, "1", "60"]
