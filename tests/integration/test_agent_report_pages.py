"""The agent-session report (API, page, CSV) and the /reports additions (service level over
time, calls by direction) through the real app on SQLite and PostgreSQL: figures from the agent
state log and the call log, hostile pause reasons escaped and defused, and the tenant wall (a
tenant's supervisor sees only its own operators; an operator is refused)."""

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
from call_router.agent_models import AgentStateLog
from call_router.call_event_kinds import EVENT_RING_NO_ANSWER
from call_router.db import Database
from call_router.models import DIRECTION_CALLBACK, Call, CallEvent, Operator
from call_router.settings import Settings
from dashboard.main import create_app
from tests.conftest import bearer_headers

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
DAY = {"date_from": "2026-11-20", "date_to": "2026-11-20"}
HOSTILE = '=HYPERLINK("http://x","<b>hi</b>")'


@pytest.fixture
async def http(database: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        Settings(state_dir=tmp_path / "state", country_code="RU", wrapup_seconds=10),
        database,
        zone=ZoneInfo("UTC"),
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers=bearer_headers(database),
    ) as client:
        yield client


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def call(name: str, answered: float, talk: int, **fields: Any) -> Call:
    values: dict[str, Any] = {
        "linkedid": uuid.uuid4().hex,
        "caller_number": "+74950000001",
        "started_at": at(answered) - timedelta(seconds=20),
        "queue": "lift",
        "queue_joined_at": at(answered) - timedelta(seconds=15),
        "answered_at": at(answered),
        "ended_at": at(answered) + timedelta(seconds=talk),
        "talk_seconds": talk,
        "operator": name,
        "outcome": "answered",
    }
    return Call(**{**values, **fields})


def fill(db: Database) -> None:
    with db.session() as session:
        other = tenants.add_tenant(session, "Other company", slug="other")
        session.add(Operator(name="Anna", sip_login="2001", sip_password="x" * 16))
        session.add(
            Operator(name="Boris", sip_login="2002", sip_password="x" * 16, tenant_id=other.id)
        )
        for login, minutes, action, reason in [
            ("2001", 0, "login", None),
            ("2001", 60, "pause", HOSTILE),
            ("2001", 90, "unpause", None),
            ("2001", 240, "logout", None),
            ("2002", 0, "login", None),
            ("2002", 120, "logout", None),
        ]:
            session.add(
                AgentStateLog(sip_login=login, at=at(minutes), action=action, reason=reason,
                              source="api", data={})
            )  # fmt: skip
        session.add(call("Anna", 10, 300))
        session.add(call("Anna", 100, 200))
        # Anna's own click-to-call (logged by login): a callback, not an answered call.
        session.add(
            call("2001", 120, 60, direction=DIRECTION_CALLBACK, queue=None, queue_joined_at=None)
        )
        boris = call("Boris", 30, 100, tenant_id=other.id)
        session.add(boris)
        session.flush()
        session.add(
            CallEvent(call_id=boris.id, at=at(50), kind=EVENT_RING_NO_ANSWER, key="rna:1",
                      data={"queue": "lift", "operator": "Boris", "ring_time": 15000})
        )  # fmt: skip


async def test_agent_report_api_page_and_csv(database: Database, http: httpx.AsyncClient) -> None:
    fill(database)
    answer = await http.get("/api/reports/agents", params=DAY)
    assert answer.status_code == 200, answer.text
    period = {f["login"]: f for f in answer.json()["period"]}
    anna, boris = period["2001"], period["2002"]
    assert anna["name"] == "Anna" and boris["name"] == "Boris"
    assert anna["logged_in_seconds"] == 4 * 3600 and anna["paused_seconds"] == 1800
    assert anna["pause_reasons"] == {HOSTILE: 1800}
    assert (anna["answered"], anna["callbacks"], anna["missed"]) == (2, 1, 0)
    assert anna["talk_seconds"] == 500 and anna["callback_seconds"] == 60
    assert anna["wrapup_seconds"] == 20
    assert anna["ready_seconds"] == 4 * 3600 - 1800 - 580
    assert anna["occupancy"] == round(580 / (4 * 3600 - 1800), 3)
    assert (boris["answered"], boris["missed"], boris["logged_in_seconds"]) == (1, 1, 7200)
    assert [d["day"] for d in answer.json()["days"]] == ["2026-11-20", "2026-11-20"]

    page = await http.get("/reports/agents", params={**DAY, "lang": "ru"})
    assert page.status_code == 200
    assert "Смены операторов" in page.text and 'data-login="2001"' in page.text
    assert "<b>hi</b>" not in page.text  # the reason is escaped

    exported = await http.get("/reports/agents.csv", params=DAY)
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    (anna_period,) = [r for r in rows if r["login"] == "2001" and r["day"] == "period"]
    assert anna_period["pause_reasons"].startswith("'=")  # defused for spreadsheets
    assert anna_period["answered"] == "2" and anna_period["callbacks"] == "1"

    bad = await http.get("/api/reports/agents", params={"date_from": "yesterday"})
    assert bad.status_code == 422


async def test_reports_show_the_service_level_over_time_and_directions(
    database: Database, http: httpx.AsyncClient
) -> None:
    fill(database)
    page = await http.get("/reports", params={**DAY, "by": "hour", "lang": "en"})
    assert page.status_code == 200
    assert 'id="chart-sl"' in page.text and "Service level over time" in page.text
    assert 'data-direction="callback"' in page.text
    exported = await http.get("/reports/export.csv", params={**DAY, "section": "directions"})
    assert dict(csv.reader(io.StringIO(exported.text))) == {
        "direction": "calls", "callback": "1", "inbound": "3",
    }  # fmt: skip
    levels = await http.get(
        "/reports/export.csv", params={**DAY, "by": "hour", "section": "service_level"}
    )
    by_hour = dict(csv.reader(io.StringIO(levels.text)))
    # Every caller was answered after 15 s: all within the threshold.
    assert by_hour["08"] == "1.000" and by_hour["09"] == "1.000" and by_hour["07"] == ""


async def test_a_tenants_supervisor_sees_only_its_operators(
    database: Database, http: httpx.AsyncClient
) -> None:
    fill(database)
    mine = bearer_headers(database, name="other", tenant="other")
    answer = await http.get("/api/reports/agents", params=DAY, headers=mine)
    assert answer.status_code == 200
    assert [f["login"] for f in answer.json()["period"]] == ["2002"]
    wider = await http.get("/api/reports/agents", params={**DAY, "tenant": "centre"}, headers=mine)
    assert wider.json()["period"] == []
    operator = bearer_headers(database, role="operator")
    assert (await http.get("/api/reports/agents", headers=operator)).status_code == 403
    assert (await http.get("/reports/agents.csv", headers=operator)).status_code == 403
