"""The dashboard's JSON API and pages against a real database: SQLite and PostgreSQL.

Rows go in through the models after the real migrations; requests go through the real app
(httpx + ASGI transport). PostgreSQL missing skips locally and fails in CI.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import Depends, Request, Response
from redis.asyncio import Redis

from call_router.db import Database
from call_router.models import Call, Callback, CallEvent, Operator
from call_router.numbers import normalize_number
from call_router.settings import Settings
from dashboard import auth
from dashboard.main import create_app
from tests.conftest import PORT_BASE, bearer_headers, midday_zone, require
from tests.integration.conftest import REDIS_URL, SseEvents, router_heartbeat

HOSTILE_NAME = "<script>alert(1)</script>"
MOSCOW_NUMBER = normalize_number("+74951234567", "RU")
OTHER_NUMBER = normalize_number("+74997654321", "RU")
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(database: Database) -> Database:
    """The shared SQLite/PostgreSQL fixture of tests/integration/conftest.py."""
    return database


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", country_code="RU")


@pytest.fixture
async def client(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, db, zone=ZoneInfo("UTC"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://dashboard.test", headers=bearer_headers(db)
    ) as http:
        yield http


def add_call(db: Database, started_at: datetime, **fields: Any) -> int:
    fields.setdefault("caller_number", MOSCOW_NUMBER)
    fields.setdefault("linkedid", uuid.uuid4().hex)
    with db.session() as session:
        call = Call(started_at=started_at, **fields)
        session.add(call)
        session.flush()
        return call.id


def parse_utc(value: str) -> datetime:
    assert value.endswith("Z") or value.endswith("+00:00"), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == timedelta(0)
    return parsed


# --- /api/calls -------------------------------------------------------------------------


async def test_calls_come_newest_first_with_utc_iso_timestamps(
    db: Database, client: httpx.AsyncClient
) -> None:
    middle = add_call(db, T0 + timedelta(minutes=5), queue="heating")
    oldest = add_call(db, T0, queue="plumbing")
    newest = add_call(
        db,
        T0 + timedelta(minutes=10),
        caller_name="Ivan",
        menu_choice="2",
        intent="electricity",
        queue="electricity",
        operator="1001",
        outcome="answered",
        answered_at=T0 + timedelta(minutes=10, seconds=12),
        ended_at=T0 + timedelta(minutes=13),
        wait_seconds=12,
        talk_seconds=168,
    )

    response = await client.get("/api/calls")

    assert response.status_code == 200
    calls = response.json()
    assert [c["id"] for c in calls] == [newest, middle, oldest]
    first = calls[0]
    assert first == first | {
        "caller_number": MOSCOW_NUMBER,
        "caller_name": "Ivan",
        "menu_choice": "2",
        "intent": "electricity",
        "queue": "electricity",
        "operator": "1001",
        "outcome": "answered",
        "wait_seconds": 12,
        "talk_seconds": 168,
    }
    assert parse_utc(first["started_at"]) == T0 + timedelta(minutes=10)
    assert parse_utc(first["answered_at"]) == T0 + timedelta(minutes=10, seconds=12)
    assert parse_utc(first["ended_at"]) == T0 + timedelta(minutes=13)
    # Fixed width: comparing the strings orders the instants.
    assert first["started_at"] < first["answered_at"] < first["ended_at"]
    assert calls[1]["ended_at"] is None and calls[1]["answered_at"] is None


@pytest.mark.parametrize(
    "typed", ["+7 495 123-45-67", "8 495 123 45 67", "84951234567", "+74951234567", "4951234567"]
)
async def test_caller_filter_accepts_any_spelling_of_the_number(
    db: Database, client: httpx.AsyncClient, typed: str
) -> None:
    mine_old = add_call(db, T0)
    add_call(db, T0 + timedelta(minutes=1), caller_number=OTHER_NUMBER)
    mine_new = add_call(db, T0 + timedelta(minutes=2))

    calls = (await client.get("/api/calls", params={"caller": typed})).json()

    assert [c["id"] for c in calls] == [mine_new, mine_old]
    assert {c["caller_number"] for c in calls} == {MOSCOW_NUMBER}


async def test_caller_filter_with_garbage_matches_nothing_not_anonymous_calls(
    db: Database, client: httpx.AsyncClient
) -> None:
    anonymous = add_call(db, T0, caller_number="anonymous")

    garbage = (await client.get("/api/calls", params={"caller": "abc"})).json()
    explicit = (await client.get("/api/calls", params={"caller": "anonymous"})).json()

    assert garbage == []
    assert [c["id"] for c in explicit] == [anonymous]


async def test_limit_offset_and_since_page_through_the_log(
    db: Database, client: httpx.AsyncClient
) -> None:
    ids = [add_call(db, T0 + timedelta(minutes=i)) for i in range(5)]
    newest_first = list(reversed(ids))

    page = (await client.get("/api/calls", params={"limit": 2, "offset": 1})).json()
    since = (
        await client.get("/api/calls", params={"since": (T0 + timedelta(minutes=3)).isoformat()})
    ).json()
    naive = await client.get("/api/calls", params={"since": "2026-11-20T09:00:00"})
    too_many = await client.get("/api/calls", params={"limit": 100_000})

    assert [c["id"] for c in page] == newest_first[1:3]
    assert [c["id"] for c in since] == newest_first[:2]
    assert naive.status_code == 422, "a naive time would silently shift the window"
    assert too_many.status_code == 422


async def test_call_detail_has_its_timeline_and_missing_call_is_404(
    db: Database, client: httpx.AsyncClient
) -> None:
    call_id = add_call(db, T0, queue="lift")
    with db.session() as session:
        session.add_all(
            [
                CallEvent(
                    call_id=call_id,
                    at=T0 + timedelta(seconds=9),
                    kind="queue",
                    key="q",
                    data={"queue": "lift"},
                ),
                CallEvent(
                    call_id=call_id,
                    at=T0 + timedelta(seconds=1),
                    kind="menu",
                    key="m",
                    data={"digit": "4"},
                ),
            ]
        )

    detail = (await client.get(f"/api/calls/{call_id}")).json()
    missing = await client.get(f"/api/calls/{call_id + 1000}")
    missing_page = await client.get(f"/calls/{call_id + 1000}")
    page = await client.get(f"/calls/{call_id}")

    assert detail["id"] == call_id and detail["queue"] == "lift"
    assert [(e["kind"], e["data"]) for e in detail["events"]] == [
        ("menu", {"digit": "4"}),
        ("queue", {"queue": "lift"}),
    ]
    assert parse_utc(detail["events"][0]["at"]) == T0 + timedelta(seconds=1)
    assert missing.status_code == 404
    assert missing_page.status_code == 404
    assert page.status_code == 200 and "queue=lift" in page.text


# --- /api/callbacks ---------------------------------------------------------------------


async def test_callbacks_lists_open_ones_oldest_first_or_all(
    db: Database, client: httpx.AsyncClient
) -> None:
    with db.session() as session:
        session.add_all(
            [
                Callback(
                    caller_number=OTHER_NUMBER,
                    reason="abandoned",
                    queue="heating",
                    attempts=2,
                    created_at=T0 + timedelta(minutes=5),
                    updated_at=T0 + timedelta(minutes=7),
                ),
                Callback(
                    caller_number=MOSCOW_NUMBER,
                    reason="after_hours",
                    queue=None,
                    created_at=T0,
                    updated_at=T0,
                ),
                Callback(
                    caller_number=MOSCOW_NUMBER,
                    reason="abandoned",
                    status="done",
                    created_at=T0 - timedelta(days=1),
                    updated_at=T0 - timedelta(days=1),
                ),
            ]
        )

    open_ = (await client.get("/api/callbacks")).json()
    everything = (await client.get("/api/callbacks", params={"status": "all"})).json()
    bad = await client.get("/api/callbacks", params={"status": "'; drop table--"})

    assert [(c["caller_number"], c["reason"]) for c in open_] == [
        (MOSCOW_NUMBER, "after_hours"),
        (OTHER_NUMBER, "abandoned"),
    ]
    heating = open_[1]
    assert heating == heating | {"status": "open", "attempts": 2, "queue": "heating"}
    assert parse_utc(heating["created_at"]) == T0 + timedelta(minutes=5)
    assert parse_utc(heating["updated_at"]) == T0 + timedelta(minutes=7)
    assert sorted(c["status"] for c in everything) == ["done", "open", "open"]
    assert bad.status_code == 422


# --- pages ------------------------------------------------------------------------------


async def test_home_page_escapes_a_hostile_caller_name(
    db: Database, client: httpx.AsyncClient
) -> None:
    add_call(db, datetime.now(UTC), caller_name=HOSTILE_NAME, queue="plumbing")

    page = await client.get("/")
    search = await client.get("/", params={"caller": '"><script>alert(2)</script>'})

    assert page.status_code == 200
    assert HOSTILE_NAME not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert(2)" not in search.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_home_page_shows_todays_calls_with_queue_and_open_callbacks(
    db: Database, client: httpx.AsyncClient
) -> None:
    now = datetime.now(UTC)
    add_call(db, now, caller_name="Today Caller", queue="meters", wait_seconds=75)
    add_call(db, now - timedelta(days=2), caller_name="Old Caller", queue="lift")
    with db.session() as session:
        session.add(Callback(caller_number=OTHER_NUMBER, reason="abandoned", queue="duty"))

    page = (await client.get("/")).text

    assert "Today Caller" in page and "meters" in page and "1:15" in page
    assert "Old Caller" not in page
    assert OTHER_NUMBER in page and "duty" in page
    # The refresh script is there, served from our origin.
    assert 'src="/static/dashboard.js"' in page
    script = await client.get("/static/dashboard.js")
    assert script.status_code == 200 and "textContent" in script.text
    # Data only ever enters the page as text: no HTML-parsing sink in the script.
    assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write", script.text)


async def test_search_page_lists_a_callers_calls_from_any_day(
    db: Database, client: httpx.AsyncClient
) -> None:
    add_call(db, datetime.now(UTC) - timedelta(days=3), caller_name="Earlier Call")
    add_call(db, datetime.now(UTC), caller_number=OTHER_NUMBER, caller_name="Someone Else")

    page = (await client.get("/", params={"caller": "8 (495) 123-45-67"})).text

    assert "Earlier Call" in page
    assert "Someone Else" not in page


# --- /healthz ---------------------------------------------------------------------------


async def test_healthz_is_ok_after_a_database_query(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    # Uptime monitors often probe with HEAD.
    head = await client.head("/healthz")

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["dependencies"]["database"] == "ok"
    assert head.status_code == 200


async def test_healthz_is_503_when_the_database_is_unreachable(settings: Settings) -> None:
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    unreachable = Database("postgresql+psycopg://postgres@127.0.0.1:1/hotline?connect_timeout=2")
    app = create_app(settings, unreachable, zone=ZoneInfo("UTC"))
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://dashboard.test"
        ) as http:
            response = await http.get("/healthz")
    finally:
        unreachable.dispose()

    assert response.status_code == 503
    assert response.json()["status"] != "ok"


# --- /api/calls filters -----------------------------------------------------------------

CALL_FIELDS = [
    "id",
    "caller_number",
    "caller_name",
    "started_at",
    "answered_at",
    "ended_at",
    "menu_choice",
    "intent",
    "queue",
    "outcome",
    "operator",
    "wait_seconds",
    "talk_seconds",
    "transcript",
    "intent_confidence",
    "utterance",
    # Added by the tenants change (a slug, or null for the centre's own call).
    "tenant",
    # Added by tenant routing: the number dialled, how the tenant was decided.
    "dialed_number",
    "tenant_source",
    # Added by supervisor analytics: inbound / callback / internal.
    "direction",
    # Added by the cluster: the node that served the call (null on one box).
    "node",
]


async def test_api_calls_filters_by_queue_intent_outcome_operator_and_until(
    db: Database, client: httpx.AsyncClient
) -> None:
    heating = add_call(
        db, T0, queue="heating", intent="no_heat", outcome="answered", operator="Anna"
    )
    add_call(db, T0 + timedelta(minutes=1), queue="heating", outcome="abandoned_in_queue")
    lift = add_call(db, T0 + timedelta(minutes=2), queue="lift", intent="stuck", operator="Boris")

    async def ids(**params: str) -> list[int]:
        response = await client.get("/api/calls", params=params)
        assert response.status_code == 200, response.text
        return [c["id"] for c in response.json()]

    assert await ids(queue="heating", outcome="answered") == [heating]
    assert await ids(intent="stuck") == [lift]
    assert await ids(operator="Anna") == [heating]
    assert await ids(until=(T0 + timedelta(minutes=1)).isoformat()) == [heating]
    assert await ids(queue="nonexistent") == []
    # The JSON shape is a contract: same fields, same order.
    assert list((await client.get("/api/calls")).json()[0]) == CALL_FIELDS


# --- /calls: the call log page and its export ---------------------------------------------


async def test_call_log_page_filters_paginates_and_escapes(
    db: Database, client: httpx.AsyncClient
) -> None:
    for i in range(55):
        add_call(db, T0 + timedelta(minutes=i), queue="meters", caller_name=f"Meter {i:02d}")
    add_call(db, T0 - timedelta(days=1), queue="heating", caller_name=HOSTILE_NAME)

    first = (await client.get("/calls", params={"queue": "meters", "lang": "en"})).text
    second = (await client.get("/calls", params={"queue": "meters", "page": 2})).text
    by_day = (
        await client.get(
            "/calls", params={"date_from": "2026-11-19", "date_to": "2026-11-19", "lang": "en"}
        )
    ).text
    bad = (await client.get("/calls", params={"date_from": "yesterday", "lang": "en"})).text

    assert "55 calls found" in first
    assert "Meter 54" in first and "Meter 05" in first and "Meter 04" not in first
    assert 'rel="next" href="?queue=meters&amp;page=2"' in first
    assert "Meter 04" in second and "Meter 05" not in second
    # The hostile name of the 19th: only that day, and as text.
    # No caller "Meter NN" of the other days (the nav's "Meter readings" link is not one).
    assert "1 calls found" in by_day and re.search(r"Meter \d", by_day) is None
    assert HOSTILE_NAME not in by_day and "&lt;script&gt;alert(1)&lt;/script&gt;" in by_day
    assert "Dates are YYYY-MM-DD." in bad


async def test_call_log_page_speaks_russian_by_default_and_english_on_request(
    client: httpx.AsyncClient,
) -> None:
    russian = await client.get("/calls")
    english = await client.get("/calls", params={"lang": "en"})
    remembered = await client.get("/calls", headers={"Cookie": "hotline_lang=en"})
    browser = await client.get("/calls", headers={"Accept-Language": "en-US,en;q=0.9"})

    assert "Журнал звонков" in russian.text and '<html lang="ru">' in russian.text
    assert "Call log" in english.text and '<html lang="en">' in english.text
    assert "hotline_lang=en" in english.headers["set-cookie"]
    assert "Call log" in remembered.text and "Call log" in browser.text


async def test_csv_export_uses_the_filters_and_defuses_formulas(
    db: Database, client: httpx.AsyncClient
) -> None:
    add_call(db, T0, queue="heating", caller_name='=HYPERLINK("http://evil")')
    add_call(db, T0 + timedelta(minutes=1), queue="lift", caller_name="Lift Person")

    response = await client.get("/calls/export.csv", params={"queue": "heating"})
    bad = await client.get("/calls/export.csv", params={"date_to": "soon"})

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["queue"] for r in rows] == ["heating"]
    assert rows[0]["caller_name"] == '\'=HYPERLINK("http://evil")'
    assert bad.status_code == 422


async def test_call_detail_shows_transcript_intent_and_confidence_escaped(
    db: Database, client: httpx.AsyncClient
) -> None:
    call_id = add_call(
        db,
        T0,
        intent="no_heat",
        transcript="<img src=x onerror=alert(1)> батарея холодная",
        intent_confidence=0.87,
    )

    page = (await client.get(f"/calls/{call_id}", params={"lang": "en"})).text

    assert "Transcript" in page and "батарея холодная" in page
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "no_heat" in page and "87%" in page


# --- the wallboard ----------------------------------------------------------------------


@pytest.fixture
async def live_redis(redis_client: Redis, redis_prefix: str) -> tuple[Redis, str]:
    """Redis with the router running (its heartbeat is fresh)."""
    await router_heartbeat(redis_client, redis_prefix)
    return redis_client, redis_prefix


def wallboard_settings(tmp_path: Path, prefix: str, redis_url: str = REDIS_URL) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        country_code="RU",
        redis_url=redis_url,
        redis_prefix=prefix,
        service_level_seconds=20,
        service_level_target=0.8,
        wallboard_waiting_alert=1,
    )


async def test_wallboard_snapshot_adds_up_today_and_shows_live_calls(
    db: Database, tmp_path: Path, live_redis: tuple[Redis, str]
) -> None:
    redis, prefix = live_redis
    now = datetime.now(UTC)
    add_call(
        db,
        now - timedelta(minutes=10),
        queue="heating",
        queue_joined_at=now - timedelta(minutes=10),
        answered_at=now - timedelta(minutes=10) + timedelta(seconds=8),
        ended_at=now - timedelta(minutes=5),
        outcome="answered",
        wait_seconds=8,
        talk_seconds=292,
        operator="Anna",
    )
    add_call(
        db,
        now - timedelta(minutes=8),
        queue="heating",
        queue_joined_at=now - timedelta(minutes=8),
        ended_at=now - timedelta(minutes=7),
        outcome="abandoned_in_queue",
        wait_seconds=60,
    )
    waiting_id = add_call(
        db,
        now - timedelta(seconds=90),
        caller_name=HOSTILE_NAME,
        queue="heating",
        queue_joined_at=now - timedelta(seconds=75),
    )
    await redis.hset(
        f"{prefix}:live:calls",
        "L1",
        json.dumps(
            {
                "call_id": waiting_id,
                "caller_number": MOSCOW_NUMBER,
                "stage": "queue",
                "queue": "heating",
                "caller_name": HOSTILE_NAME,
            }
        ),
    )
    await redis.hset(f"{prefix}:live:queues", "heating", 2)
    with db.session() as session:
        session.add(Operator(name="Anna", sip_login="1001", sip_password="x" * 16))
        session.add(Operator(name="Boris", sip_login="1002", sip_password="y" * 16))
    # The router's live hash is keyed by login; its name may be the bare interface.
    since = (now - timedelta(seconds=42)).isoformat()
    await redis.hset(
        f"{prefix}:live:operators",
        "1001",
        json.dumps({"name": "PJSIP/1001", "state": "busy", "since": since}),
    )
    # Today's figures count from local midnight: in a zone where it is midday the calls of ten
    # minutes ago are today's whatever the hour the suite runs at.
    app = create_app(wallboard_settings(tmp_path, prefix), db, zone=midday_zone())

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers=bearer_headers(db),
    ) as http:
        snap = (await http.get("/api/wallboard", params={"lang": "en"})).json()
        page = (await http.get("/wallboard", params={"lang": "en"})).text

    heating = next(q for q in snap["queues"] if q["queue"] == "heating")
    assert snap["live"] is True
    assert (
        heating
        | {
            "offered": 3,
            "answered": 1,
            "abandoned": 1,
            "waiting": 2,
            "asa_seconds": 8.0,
            "aht_seconds": 292.0,
        }
        == heating
    )
    assert 74 <= heating["longest_wait_seconds"] <= 80
    # Decided: the answered one (in time), the abandoned one, the one waiting 75 s > 20 s.
    assert heating["service_level"] == pytest.approx(1 / 3)
    kinds = {(a["kind"], a["queue"]) for a in snap["alerts"]}
    assert {("service_level", "heating"), ("queue_waiting", "heating")} <= kinds
    operators = {op["name"]: op for op in snap["operators"]}
    assert set(operators) == {"Anna", "Boris"}
    assert operators["Anna"]["state"] == "busy" and operators["Anna"]["state_label"] == "on a call"
    assert 41 <= operators["Anna"]["seconds_in_state"] <= 50
    # Boris: no live entry, the roster's default (logged in to all skills).
    assert operators["Boris"]["state"] == "available"
    [live_call] = snap["calls"]
    assert live_call["stage"] == "queue" and live_call["caller_name"] == HOSTILE_NAME
    # The page: definitions written out, the hostile name as text.
    assert "answered within 20 s of joining the queue" in page
    assert HOSTILE_NAME not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'src="/static/wallboard.js"' in page


async def test_wallboard_without_redis_falls_back_to_the_call_log(
    db: Database, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    add_call(db, now - timedelta(seconds=30), queue="lift", queue_joined_at=now)
    add_call(db, now - timedelta(seconds=5))
    # Port 1: nothing listens; the connection is refused at once.
    settings = wallboard_settings(tmp_path, "none", redis_url="redis://127.0.0.1:1/0")
    app = create_app(settings, db, zone=ZoneInfo("UTC"))

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers=bearer_headers(db),
    ) as http:
        response = await http.get("/api/wallboard")

    assert response.status_code == 200
    snap = response.json()
    assert snap["live"] is False
    assert sorted(c["stage"] for c in snap["calls"]) == ["menu", "queue"]


async def test_wallboard_script_only_writes_text() -> None:
    from dashboard.main import HERE

    script = (HERE / "static" / "wallboard.js").read_text()
    assert "textContent" in script and "EventSource" in script
    assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write", script)


async def test_shared_table_cells_script_only_writes_text() -> None:
    from dashboard.main import HERE

    script = (HERE / "static" / "cells.js").read_text()
    assert "textContent" in script
    assert not re.search(r"\.(inner|outer)HTML|insertAdjacentHTML|document\.write", script)


# --- the wallboard stream (a real HTTP server: SSE needs real streaming) ------------------


class Snapshots(SseEvents):
    """Reads `snapshot` events off an SSE response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response, "snapshot")


async def test_stream_pushes_a_snapshot_within_a_second_of_an_event(
    db: Database, tmp_path: Path, live_redis: tuple[Redis, str], serve: Any
) -> None:
    redis, prefix = live_redis
    base = serve(wallboard_settings(tmp_path, prefix), PORT_BASE + 81)

    async with (
        httpx.AsyncClient(base_url=base, timeout=10, headers=bearer_headers(db)) as http,
        http.stream("GET", "/api/wallboard/stream") as response,
    ):
        assert response.headers["content-type"].startswith("text/event-stream")
        snaps = Snapshots(response)
        first = await snaps.next(timeout=5)
        assert first["calls"] == []

        await redis.hset(
            f"{prefix}:live:calls",
            "L9",
            json.dumps({"call_id": None, "caller_number": "+74950000009", "stage": "menu"}),
        )
        sent = time.monotonic()
        await redis.publish(f"{prefix}:events", json.dumps({"type": "call_menu"}))
        second = await snaps.next(timeout=1.0)
        assert time.monotonic() - sent < 1.0
        assert [c["caller_number"] for c in second["calls"]] == ["+74950000009"]

        await redis.publish(
            f"{prefix}:events", json.dumps({"type": "callback_overdue", "callback_id": 4})
        )
        third = await snaps.next(timeout=1.0)
        assert [a["kind"] for a in third["alerts"]] == ["callbacks_overdue"]


def _redis_server(port: int, workdir: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while (
        subprocess.run(
            ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
        ).stdout.strip()
        != b"PONG"
    ):
        assert time.monotonic() < deadline, "redis-server did not start"
        time.sleep(0.1)
    return proc


async def test_stream_survives_a_redis_restart(db: Database, tmp_path: Path, serve: Any) -> None:
    require(shutil.which("redis-server") is not None, "redis-server not installed")
    port = PORT_BASE + 79
    url = f"redis://127.0.0.1:{port}/0"
    proc = _redis_server(port, tmp_path)

    async def router_running() -> None:
        # The router vouches for live data (its heartbeat); it rewrites it when Redis is back.
        client = Redis.from_url(url)
        try:
            await router_heartbeat(client, "restart")
        finally:
            await client.aclose()

    try:
        await router_running()
        base = serve(wallboard_settings(tmp_path, "restart", redis_url=url), PORT_BASE + 82)
        async with (
            httpx.AsyncClient(base_url=base, timeout=30, headers=bearer_headers(db)) as http,
            http.stream("GET", "/api/wallboard/stream") as response,
        ):
            snaps = Snapshots(response)
            assert (await snaps.next(timeout=5))["live"] is True

            proc.terminate()
            proc.wait(timeout=10)
            assert (await snaps.next(timeout=5))["live"] is False

            proc = _redis_server(port, tmp_path)
            await router_running()
            # Back: the stream resubscribes and resyncs on its own...
            async with asyncio.timeout(10):
                while not (await snaps.next(timeout=10))["live"]:
                    pass
            # ...and events flow again.
            client = Redis.from_url(url)
            try:
                await client.publish("restart:events", json.dumps({"type": "queue"}))
            finally:
                await client.aclose()
            assert (await snaps.next(timeout=2))["live"] is True
    finally:
        proc.terminate()
        proc.wait(timeout=10)


# --- /reports ---------------------------------------------------------------------------


async def test_reports_count_per_hour_queue_and_intent_with_svg_and_csv(
    db: Database, client: httpx.AsyncClient
) -> None:
    def queued(minutes: int, **fields: Any) -> int:
        at = T0 + timedelta(minutes=minutes)
        return add_call(db, at, queue="heating", queue_joined_at=at, **fields)

    queued(
        0,
        answered_at=T0 + timedelta(seconds=5),
        wait_seconds=5,
        talk_seconds=100,
        outcome="answered",
        intent="no_heat",
    )
    queued(
        70,
        outcome="abandoned_in_queue",
        wait_seconds=40,
        ended_at=T0 + timedelta(minutes=71),
        intent="=no_heat",
    )
    add_call(db, T0 + timedelta(minutes=75), caller_name=HOSTILE_NAME, intent="leak")
    # An operator's click-to-call and an internal call in the 10:00 hour: not callers. The
    # calls chart, its total and the intents count callers only; the direction table the rest.
    add_call(db, T0 + timedelta(minutes=65), direction="callback", operator="1001")
    # (an operator's test call into the menu, queued like a caller: not offered either)
    queued(66, direction="internal", outcome="abandoned_in_queue", wait_seconds=5)
    add_call(db, T0 + timedelta(days=3))  # outside the range
    params = {"date_from": "2026-11-20", "date_to": "2026-11-20", "by": "hour", "lang": "en"}

    page = await client.get("/reports", params=params)
    buckets = await client.get("/reports/export.csv", params={**params, "section": "buckets"})
    queues = await client.get("/reports/export.csv", params={**params, "section": "queues"})
    intents = await client.get("/reports/export.csv", params={**params, "section": "intents"})
    too_long = await client.get("/reports", params={"date_from": "2020-01-01"})

    assert page.status_code == 200
    assert '<svg id="chart-buckets"' in page.text and "<title>09: 1</title>" in page.text
    assert "<title>10: 2</title>" in page.text
    per_hour = dict(csv.reader(io.StringIO(buckets.text)))
    assert per_hour["09"] == "1" and per_hour["10"] == "2" and per_hour["11"] == "0"
    directions = await client.get("/reports/export.csv", params={**params, "section": "directions"})
    per_direction = dict(csv.reader(io.StringIO(directions.text)))
    assert per_direction == {"direction": "calls", "inbound": "3", "callback": "1", "internal": "1"}
    assert "—" not in dict(csv.reader(io.StringIO(intents.text)))  # no caller without an intent
    heating = next(r for r in csv.DictReader(io.StringIO(queues.text)) if r["queue"] == "heating")
    assert heating | {"offered": "2", "answered": "1", "abandoned": "1"} == heating
    assert heating["service_level"] == "0.5"
    # Intents from speech recognition are text too: formulas defused.
    assert dict(csv.reader(io.StringIO(intents.text)))["'=no_heat"] == "1"
    assert too_long.status_code == 422


async def test_a_page_rendered_without_i18n_render_still_gets_texts(
    db: Database, settings: Settings
) -> None:
    # Pages other modules add extend base.html with a plain TemplateResponse.
    app = create_app(settings, db, zone=ZoneInfo("UTC"))

    @app.get("/plain-page", dependencies=[Depends(auth.STAFF)])
    def plain_page(request: Request) -> Response:
        templates = app.state.dashboard.templates
        return templates.TemplateResponse(
            request=request, name="base.html", context={"search": None}
        )

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers=bearer_headers(db),
    ) as http:
        english = await http.get("/plain-page", headers={"Accept-Language": "en"})
        russian = await http.get("/plain-page", params={"lang": "ru"})

    assert english.status_code == 200 and '<html lang="en">' in english.text
    assert "Call log" in english.text
    assert "Журнал звонков" in russian.text and 'href="/plain-page?lang=en"' in russian.text


async def test_call_detail_shows_the_operators_disposition_as_text(
    db: Database, client: httpx.AsyncClient
) -> None:
    from call_router.agent_models import CallDisposition

    call_id = add_call(db, T0, queue="lift", operator="Anna")
    with db.session() as session:
        session.add(
            CallDisposition(
                call_id=call_id, category="resolved", note="<b>lift</b> restarted", operator="Anna"
            )
        )

    page = (await client.get(f"/calls/{call_id}", params={"lang": "en"})).text

    assert "Disposition" in page and "resolved" in page
    assert "&lt;b&gt;lift&lt;/b&gt; restarted" in page and "<b>lift</b>" not in page


async def test_an_id_beyond_the_databases_integer_range_is_422_not_a_server_error(
    client: httpx.AsyncClient,
) -> None:
    """Found by tests/integration/test_api_fuzz.py: PostgreSQL refused to compare such a
    number with an INTEGER column and the request ended in a 500."""
    huge = 2**31  # one past the largest INTEGER
    requests = [
        client.get(f"/api/calls/{huge}"),
        client.get(f"/api/calls/{huge}/disposition"),
        client.post(f"/api/calls/{huge}/disposition", json={"category": "consultation"}),
        client.get(f"/api/callbacks/{huge}"),
        client.post(f"/api/callbacks/{huge}/claim", json={"operator": "3201"}),
        client.post(f"/api/callbacks/{huge}/release", json={}),
        client.post(f"/api/callbacks/{huge}/outcome", json={"outcome": "reached"}),
        client.get(f"/calls/{huge}"),
    ]
    for request in requests:
        response = await request
        assert response.status_code == 422, (response.request.url, response.text)
