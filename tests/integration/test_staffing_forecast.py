"""The staffing forecast recovers a known arrival pattern from a real call log (SQLite and
PostgreSQL): a synthetic four weeks with fixed calls on Monday 09:00 and Tuesday 14:30 (Moscow
time), operators who log in, pause and log out, a click-to-call row, an older call, and another
tenant's calls and operator behind the wall. And `hotline staffing` itself (JSON, CSV, text;
the average-wait and the service-level target) on a log of the last four weeks."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from call_router import staffing_store, tenant_wall, tenants
from call_router.agent_models import AgentStateLog
from call_router.db import Database
from call_router.erlang import Target, agents_needed
from call_router.models import Call, Operator
from call_router.staffing import SLOTS_PER_DAY, ForecastRow

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)  # Wednesday 13:00 in Moscow
WEEKS = 4
WRAPUP = 10.0
TARGET = Target(average_wait=60, max_occupancy=0.85)
MONDAY_CALLS, TUESDAY_CALLS = 40, 8


def local(day: datetime, hour: int, minute: int = 0, second: int = 0) -> datetime:
    moment = datetime(day.year, day.month, day.day, hour, minute, tzinfo=MOSCOW)
    return (moment + timedelta(seconds=second)).astimezone(UTC)


def fill(db: Database) -> int:
    """Returns the tenant id of the second company."""
    mondays = [datetime(2026, 11, 23) - timedelta(weeks=w) for w in range(WEEKS)]
    with db.session() as session:
        other = tenants.add_tenant(session, "Other company", slug="other")
        n = 0

        def call(joined: datetime, talk: int | None, **extra: object) -> Call:
            nonlocal n
            n += 1
            answered = joined + timedelta(seconds=5) if talk is not None else None
            return Call(
                linkedid=extra.pop("linkedid", f"sf-{n}"),  # type: ignore[arg-type]
                caller_number=f"+7495100{n:04d}",
                started_at=joined - timedelta(seconds=20),
                queue="plumbing",
                queue_joined_at=joined,
                answered_at=answered,
                talk_seconds=talk,
                ended_at=(answered or joined) + timedelta(seconds=talk or 30),
                **extra,
            )

        for monday in mondays:
            for i in range(MONDAY_CALLS):
                # half talk 100 s, half 140 s: mean 120; the last four abandoned (no handle time)
                talk = None if i >= 36 else (100 if i % 2 else 140)
                session.add(call(local(monday, 9, 0, 20 * i), talk))
            tuesday = monday + timedelta(days=1)
            for i in range(TUESDAY_CALLS):
                session.add(call(local(tuesday, 14, 30, 60 * i), 300))
            # another tenant's calls at the same hour: outside a scoped forecast
            for i in range(5):
                session.add(call(local(monday, 9, 1, i), 60, tenant_id=other.id))
            # an operator's click-to-call: not an arrival
            session.add(call(local(monday, 9, 2), 60, linkedid=f"cb-{n}", direction="callback"))
        # five weeks ago: outside the history
        session.add(call(local(mondays[-1] - timedelta(weeks=1), 9, 5), 100))
        # today (Wednesday) 09:00: inside the forecast week, not the history
        session.add(call(local(datetime(2026, 11, 25), 9, 0), 100))

        session.add(Operator(name="Anna", sip_login="1001", sip_password="x" * 16))
        session.add(Operator(name="Boris", sip_login="1002", sip_password="x" * 16))
        session.add(
            Operator(name="Other", sip_login="1003", sip_password="x" * 16, tenant_id=other.id)
        )

        def log(login: str, at: datetime, action: str) -> None:
            session.add(AgentStateLog(sip_login=login, at=at, action=action, source="cli", data={}))

        # Boris logged in before the history began and never left.
        log("1002", local(mondays[-1] - timedelta(days=7), 8), "login")
        for monday in mondays:
            # Anna: Monday 09:00-10:00, paused for the second half of the first quarter hour.
            log("1001", local(monday, 9), "login")
            log("1001", local(monday, 9, 7, 30), "pause")
            log("1001", local(monday, 9, 15), "unpause")
            log("1001", local(monday, 10), "logout")
            # the other tenant's operator at the same hour
            log("1003", local(monday, 9), "login")
            log("1003", local(monday, 11), "logout")
        return other.id


def row(rows: list[ForecastRow], weekday: int, hh: int, mm: int) -> ForecastRow:
    slot = (hh * 60 + mm) // 15
    [found] = [r for r in rows if r.weekday == weekday and r.slot == slot]
    return found


def test_forecast_recovers_the_arrival_pattern(database: Database) -> None:
    fill(database)
    with database.session() as session:
        tenant_wall.set_scope(session, tenant_wall.CENTRE_ONLY)
        window, rows = staffing_store.week_forecast(session, NOW, WEEKS, MOSCOW, TARGET, WRAPUP)
    assert window.start == local(datetime(2026, 10, 28), 0) and window.end == local(
        datetime(2026, 11, 25), 0
    )
    assert len(rows) == 7 * SLOTS_PER_DAY
    assert rows[0].day.isoformat() == "2026-11-25" and rows[0].time == "00:00"

    monday = row(rows, 0, 9, 0)
    assert monday.day.isoformat() == "2026-11-30"
    assert monday.calls == MONDAY_CALLS  # 40 a week, every week: the average is 40
    assert monday.handle_seconds == pytest.approx(120 + WRAPUP)
    assert monday.needed == agents_needed(MONDAY_CALLS, 120 + WRAPUP, 900, TARGET).agents
    assert monday.needed >= 7  # 5.8 Erlangs at 85 % at most
    assert monday.logged_in == pytest.approx(2.0)  # Anna and Boris (not the other tenant's)
    assert monday.ready == pytest.approx(1.5)  # Anna paused half of it
    assert monday.gap == pytest.approx(2.0 - monday.needed)
    assert row(rows, 0, 9, 15).logged_in == pytest.approx(2.0)
    assert row(rows, 0, 9, 15).calls == 0 and row(rows, 0, 9, 15).needed == 0

    tuesday = row(rows, 1, 14, 30)
    assert tuesday.calls == TUESDAY_CALLS
    assert tuesday.handle_seconds == pytest.approx(300 + WRAPUP)
    assert tuesday.logged_in == pytest.approx(1.0)  # Boris only
    # Everything else is quiet: only the two known quarter hours expect calls.
    busy = {(r.weekday, r.time) for r in rows if r.calls}
    assert busy == {(0, "09:00"), (1, "14:30")}


def test_a_tenants_forecast_sees_only_its_calls_and_operators(database: Database) -> None:
    other = fill(database)
    with database.session() as session:
        tenant_wall.set_scope(session, tenant_wall.tenant_scope(other))
        _, rows = staffing_store.week_forecast(session, NOW, WEEKS, MOSCOW, TARGET, WRAPUP)
    monday = row(rows, 0, 9, 0)
    assert monday.calls == 5 and monday.handle_seconds == pytest.approx(60 + WRAPUP)
    assert monday.logged_in == pytest.approx(1.0)
    assert row(rows, 1, 14, 30).calls == 0
    assert row(rows, 0, 10, 45).logged_in == pytest.approx(1.0)
    assert row(rows, 0, 11, 0).logged_in == 0


def test_the_cli_plans_for_either_target_as_json_csv_and_text(database: Database) -> None:
    # The CLI plans from the real clock: 30 callers at 09:00 on yesterday's weekday, each of
    # the last four weeks (talk 170 s + the wrap-up), Moscow time.
    today = datetime.now(MOSCOW).date()
    days = [today - timedelta(days=1) - timedelta(weeks=w) for w in range(WEEKS)]
    with database.session() as session:
        for d, day in enumerate(days):
            for i in range(30):
                nine = datetime(day.year, day.month, day.day, 9, tzinfo=MOSCOW)
                joined = nine + timedelta(seconds=25 * i)
                session.add(
                    Call(
                        linkedid=f"cli-{d}-{i}", caller_number="+74951000000",
                        started_at=joined - timedelta(seconds=10), queue="plumbing",
                        queue_joined_at=joined, answered_at=joined + timedelta(seconds=5),
                        talk_seconds=170, ended_at=joined + timedelta(seconds=175),
                    )
                )  # fmt: skip
    env = {
        **os.environ,
        "HOTLINE_DATABASE_URL": database.url,
        "HOTLINE_TIMEZONE": "Europe/Moscow",
        "HOTLINE_WRAPUP_SECONDS": str(int(WRAPUP)),
    }

    def staffing(*args: str) -> str:
        proc = subprocess.run(
            [sys.executable, "-m", "hotline", "staffing", "--weeks", str(WEEKS), *args],
            capture_output=True, text=True, timeout=180, env=env,
        )  # fmt: skip
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return proc.stdout

    weekday = days[0].weekday()
    by_asa = json.loads(staffing("--target-asa", "60", "--json"))
    by_sl = json.loads(staffing("--target-sl", "90/15", "--max-occupancy", "1", "--json"))
    assert by_asa["target"] == {
        "service_level": None, "answer_seconds": 20.0, "average_wait": 60.0, "max_occupancy": 0.85
    }  # fmt: skip
    assert by_sl["target"]["service_level"] == 0.9 and by_sl["target"]["answer_seconds"] == 15
    for plan, target in (
        (by_asa, Target(average_wait=60, max_occupancy=0.85)),
        (by_sl, Target(service_level=0.9, answer_seconds=15, max_occupancy=1.0)),
    ):
        busy = [r for r in plan["rows"] if r["calls"]]
        assert [(r["weekday"], r["time"], r["calls"]) for r in busy] == [(weekday, "09:00", 30)]
        assert busy[0]["handle_seconds"] == pytest.approx(170 + WRAPUP)
        assert busy[0]["needed"] == agents_needed(30, 170 + WRAPUP, 900, target).agents
    # The two targets plan differently (occupancy-capped average wait vs 90 % in 15 s).
    assert by_asa["rows"] != by_sl["rows"]

    lines = list(csv.reader(io.StringIO(staffing("--target-asa", "60", "--csv"))))
    assert lines[0][:6] == ["day", "time", "weekday", "calls", "handle_seconds", "needed"]
    assert len(lines) == 1 + 7 * SLOTS_PER_DAY
    [peak] = [line for line in lines[1:] if line[1] == "09:00" and line[2] == str(weekday)]
    asa_peak = next(r for r in by_asa["rows"] if r["calls"])
    assert float(peak[3]) == 30 and int(peak[5]) == asa_peak["needed"]

    text = staffing("--target-asa", "60")
    assert f"{WEEKS} weeks" in text
    assert any(" 09:00 " in line and "30.0" in line for line in text.splitlines())
