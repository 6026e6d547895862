"""The abandoned-callers list (API, page, CSV) and the staffing forecast (API, page, CSV) through
the real app on SQLite and PostgreSQL: the right callers, their callback entry and call-back,
hostile caller names escaped and defused, and the tenant wall (a tenant's supervisor sees only
its own callers; an operator is refused)."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import tenants
from call_router.db import Database
from call_router.models import Call, Callback
from call_router.settings import Settings
from dashboard.main import create_app
from tests.conftest import bearer_headers

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
DAY = {"date_from": "2026-11-20", "date_to": "2026-11-20"}
HOSTILE = '=HYPERLINK("http://x","<b>hi</b>")'
NUMBER, OTHER, THIRD = "+74951110001", "+74951110002", "+74951110003"


def add_call(db: Database, started: datetime, **fields: Any) -> int:
    fields.setdefault("linkedid", uuid.uuid4().hex)
    with db.session() as session:
        call = Call(started_at=started, **fields)
        session.add(call)
        session.flush()
        return call.id


@pytest.fixture
async def http(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(state_dir=tmp_path / "state", country_code="RU"), database, zone=ZoneInfo("UTC")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers=bearer_headers(database),
    ) as client:
        yield client


def fill(db: Database) -> dict[str, int]:
    with db.session() as session:
        other = tenants.add_tenant(session, "Other company", slug="other")
        other_id = other.id
    ids = {
        # waited 75 s, hung up; a callback entry opened; an operator called back at 09:30
        "abandoned": add_call(
            db, T0, caller_number=NUMBER, caller_name=HOSTILE, queue="heating",
            queue_joined_at=T0 + timedelta(seconds=10), ended_at=T0 + timedelta(seconds=85),
            outcome="abandoned_in_queue", wait_seconds=75,
        ),
        # timed out in the queue; never called back
        "timeout": add_call(
            db, T0 + timedelta(hours=1), caller_number=OTHER, queue="plumbing",
            queue_joined_at=T0 + timedelta(hours=1, seconds=5),
            ended_at=T0 + timedelta(hours=1, seconds=305), outcome="queue_timeout",
        ),
        "answered": add_call(
            db, T0 + timedelta(minutes=5), caller_number=OTHER, queue="heating",
            queue_joined_at=T0 + timedelta(minutes=5), answered_at=T0 + timedelta(minutes=6),
            ended_at=T0 + timedelta(minutes=9), outcome="answered", operator="1001",
        ),
        "callback_call": add_call(
            db, T0 + timedelta(minutes=30), caller_number=NUMBER, queue="heating",
            linkedid=f"cb-{uuid.uuid4().hex}", operator="1001", direction="callback",
            answered_at=T0 + timedelta(minutes=30, seconds=9),
            ended_at=T0 + timedelta(minutes=33), outcome="answered",
        ),
        "other_tenant": add_call(
            db, T0 + timedelta(minutes=2), caller_number=THIRD, queue="heating",
            queue_joined_at=T0 + timedelta(minutes=2), ended_at=T0 + timedelta(minutes=3),
            outcome="abandoned_in_queue", wait_seconds=40, tenant_id=other_id,
        ),
        # the day before: outside the period
        "yesterday": add_call(
            db, T0 - timedelta(days=1), caller_number=OTHER, queue="heating",
            queue_joined_at=T0 - timedelta(days=1), ended_at=T0 - timedelta(days=1, seconds=-30),
            outcome="abandoned_in_queue", wait_seconds=30,
        ),
    }  # fmt: skip
    with db.session() as session:
        entry = Callback(
            caller_number=NUMBER, reason="abandoned", queue="heating", status="done",
            last_call_id=ids["abandoned"], created_at=T0 + timedelta(seconds=86),
            updated_at=T0 + timedelta(minutes=33), closed_at=T0 + timedelta(minutes=33),
        )  # fmt: skip
        session.add(entry)
        session.flush()
        ids["entry"] = entry.id
    return ids


async def test_abandoned_list_api_page_and_csv(database: Database, http: httpx.AsyncClient) -> None:
    ids = fill(database)
    answer = await http.get("/api/reports/abandoned", params=DAY)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert [r["call_id"] for r in body["rows"]] == [
        ids["timeout"],
        ids["other_tenant"],
        ids["abandoned"],
    ]
    assert body["count"] == 3 and body["called_back"] == 1
    first = body["rows"][-1]
    assert first["waited_seconds"] == 75 and first["queue"] == "heating"
    assert first["callback_id"] == ids["entry"] and first["callback_status"] == "done"
    assert first["callback_url"] == f"/callbacks/{ids['entry']}/history"
    assert first["called_back_at"] == "2026-11-20T09:30:00+00:00"
    assert first["called_back_by"] == "1001" and first["callback_answered"] is True
    timeout = body["rows"][0]
    assert timeout["waited_seconds"] == 300 and timeout["called_back_at"] is None
    assert timeout["callback_id"] is None

    by_queue = await http.get("/api/reports/abandoned", params={**DAY, "queue": "plumbing"})
    assert [r["call_id"] for r in by_queue.json()["rows"]] == [ids["timeout"]]
    assert (await http.get("/api/reports/abandoned", params={"queue": "nope"})).status_code == 422
    bad_date = await http.get("/api/reports/abandoned", params={"date_from": "20-11-2026"})
    assert bad_date.status_code == 422
    centre = await http.get("/api/reports/abandoned", params={**DAY, "tenant": "centre"})
    assert ids["other_tenant"] not in [r["call_id"] for r in centre.json()["rows"]]

    page = await http.get("/reports/abandoned", params=DAY)
    assert page.status_code == 200
    assert HOSTILE not in page.text and "&lt;b&gt;hi&lt;/b&gt;" in page.text
    assert f'href="/callbacks/{ids["entry"]}/history"' in page.text

    exported = await http.get("/reports/abandoned.csv", params=DAY)
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 3
    hostile = next(r for r in rows if r["call_id"] == str(ids["abandoned"]))
    assert hostile["caller_name"] == "'" + HOSTILE  # defused: a spreadsheet shows it as text
    assert hostile["callback_id"] == str(ids["entry"])


async def test_a_tenants_supervisor_sees_only_its_callers(
    database: Database, http: httpx.AsyncClient
) -> None:
    ids = fill(database)
    mine = bearer_headers(database, name="other", tenant="other")
    answer = await http.get("/api/reports/abandoned", params=DAY, headers=mine)
    assert answer.status_code == 200
    assert [r["call_id"] for r in answer.json()["rows"]] == [ids["other_tenant"]]
    # ?tenant= only narrows: asking for the centre's rows gives nothing.
    wider = await http.get(
        "/api/reports/abandoned", params={**DAY, "tenant": "centre"}, headers=mine
    )
    assert wider.json()["rows"] == []
    assert (await http.get("/staffing", headers=mine)).status_code == 200
    operator = bearer_headers(database, role="operator")
    assert (await http.get("/api/reports/abandoned", headers=operator)).status_code == 403
    assert (await http.get("/api/staffing", headers=operator)).status_code == 403


async def test_staffing_api_page_and_csv(database: Database, http: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    # Last week, same weekday and quarter hour: 12 answered calls of 170 s (+ 10 s wrap-up).
    slot = now.replace(minute=now.minute // 15 * 15, second=0, microsecond=0) - timedelta(weeks=1)
    for i in range(12):
        joined = slot + timedelta(seconds=30 * i)
        add_call(
            database, joined, queue="heating", queue_joined_at=joined,
            answered_at=joined + timedelta(seconds=4), talk_seconds=170,
            ended_at=joined + timedelta(seconds=174), outcome="answered",
        )  # fmt: skip
    answer = await http.get("/api/staffing", params={"weeks": 1, "target_asa": 30})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert len(body["rows"]) == 7 * 96 and body["target"]["average_wait"] == 30
    busy = [r for r in body["rows"] if r["calls"]]
    assert len(busy) == 1 and busy[0]["calls"] == 12 and busy[0]["handle_seconds"] == 180
    assert busy[0]["needed"] >= 3 and busy[0]["gap"] == -busy[0]["needed"]

    bad = await http.get("/api/staffing", params={"target_sl": "eighty"})
    assert bad.status_code == 422 and "PERCENT/SECONDS" in bad.text
    assert (await http.get("/api/staffing", params={"weeks": 0})).status_code == 422

    page = await http.get("/staffing", params={"weeks": 1, "target_sl": "80/20"})
    assert page.status_code == 200
    assert page.text.count('class="staffing-day"') == 7
    assert 'class="shortfall"' in page.text  # nobody logged in: the need is all shortfall

    exported = await http.get("/staffing.csv", params={"weeks": 1})
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert rows[0][:3] == ["day", "time", "weekday"] and len(rows) == 1 + 7 * 96
