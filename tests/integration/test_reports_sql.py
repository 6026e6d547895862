"""Reports computed by the database (GROUP BY on SQLite and PostgreSQL) against figures worked
out by hand from a small fixed call log. The hotline's zone is Moscow (UTC+3, no DST), so the
local days 23-24 Nov are [22 Nov 21:00 UTC, 24 Nov 21:00 UTC)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from call_router import call_sums, reports
from call_router import service_figures as sf
from call_router.agent_models import AgentStateLog
from call_router.db import Database
from call_router.models import Call, Operator
from call_router.outcomes import ABANDONED_IN_QUEUE
from call_router.reports import Bucket
from call_router.settings import QUEUES, Settings
from dashboard.routes.reports import Report, build_report

MOSCOW = ZoneInfo("Europe/Moscow")
NOW = datetime(2026, 11, 24, 10, 0, 35, tzinfo=UTC)
FIRST, LAST = date(2026, 11, 23), date(2026, 11, 24)


def utc(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, second, tzinfo=UTC)


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


def _call(n: int, started: datetime, **fields: object) -> Call:
    return Call(linkedid=f"rep-{n}", caller_number=f"+7495900{n:04d}", started_at=started, **fields)


def fill(db: Database) -> None:
    t1, t2, t3, t4 = utc(23, 6), utc(23, 6, 10), utc(23, 7), utc(23, 20, 59, 59)
    t7, t8 = utc(24, 10), utc(24, 10, 0, 20)
    calls = [
        # water: logged wait 15 s and talk 120 s
        _call(1, t1, queue="plumbing", intent="water", queue_joined_at=t1 + s(10),
              answered_at=t1 + s(25), ended_at=t1 + s(145), wait_seconds=15, talk_seconds=120,
              operator="Anna", outcome="answered"),
        # no logged wait/talk: computed from the timestamps (30 s, 60 s)
        _call(2, t2, queue="plumbing", intent="water", queue_joined_at=t2 + s(5),
              answered_at=t2 + s(35), ended_at=t2 + s(95), operator="Boris", outcome="answered"),
        _call(3, t3, queue="plumbing", intent="heating", queue_joined_at=t3 + s(5),
              ended_at=t3 + s(50), wait_seconds=45, outcome=ABANDONED_IN_QUEUE),
        # 23:59:59 local on the 23rd; answered exactly at the 20 s threshold (counts as within)
        _call(4, t4, queue="heating", intent="heating", queue_joined_at=t4 + s(10),
              answered_at=t4 + s(30), ended_at=t4 + s(330), wait_seconds=20, talk_seconds=300,
              operator="Anna", outcome="answered"),
        # 00:00 local on the 24th, menu only
        _call(5, utc(23, 21), ended_at=utc(23, 21, 1), outcome="menu_hangup"),
        # 23:59 local on the 22nd: outside the range
        _call(6, utc(22, 20, 59), queue="plumbing", intent="water", queue_joined_at=utc(22, 21),
              answered_at=utc(22, 21, 0, 5), ended_at=utc(22, 21, 1), operator="Anna",
              wait_seconds=5, talk_seconds=55),
        # still waiting at NOW: 30 s (past the threshold: a miss) and 10 s (undecided)
        _call(7, t7, queue="heating", intent="heating", queue_joined_at=t7 + s(5)),
        _call(8, t8, queue="heating", queue_joined_at=t8 + s(5)),
    ]  # fmt: skip
    log = [
        # began before the range (23:30 local on the 22nd): only the 30 min inside count
        ("anna01", utc(22, 20, 30), "pause"),
        ("anna01", utc(22, 21, 30), "unpause"),
        ("boris01", utc(23, 5), "login"),
        ("anna01", utc(23, 8), "pause"),
        ("anna01", utc(23, 8, 10), "logout"),
        # still paused at NOW
        ("boris01", utc(24, 9), "pause"),
        # a login without a roster entry is shown by login
        ("zed", utc(23, 12), "pause"),
        ("zed", utc(23, 12, 1), "pause"),
        ("zed", utc(23, 12, 2), "unpause"),
        # long before the range
        ("carol01", utc(20, 10), "pause"),
        ("carol01", utc(20, 10, 5), "unpause"),
    ]
    with db.session() as session:
        session.add_all(calls)
        session.add_all(
            [
                Operator(name="Anna", sip_login="anna01", sip_password="x" * 16),
                Operator(name="Boris", sip_login="boris01", sip_password="y" * 16),
            ]
        )
        session.add_all(
            AgentStateLog(sip_login=login, at=at, action=action, reason="lunch", source="cli")
            for login, at, action in log
        )


def report(db: Database, by: Bucket = "day") -> Report:
    with db.session() as session:
        return build_report(
            session, Settings(service_level_seconds=20), MOSCOW, FIRST, LAST, by, now=NOW
        )


def test_totals_and_rates(database: Database) -> None:
    fill(database)
    r = report(database)

    assert r.total == 7
    assert (r.answered, r.abandoned) == (3, 1)
    assert r.abandon_rate == pytest.approx(1 / 6)
    # within: calls 1 and 4; decided: 1, 2, 3, 4 and 7 (call 8 is still under the threshold)
    assert r.service_level == pytest.approx(2 / 5)
    assert r.asa_seconds == pytest.approx((15 + 30 + 20) / 3)
    assert r.aht_seconds == pytest.approx((120 + 60 + 300) / 3)


def test_local_days_and_hours(database: Database) -> None:
    fill(database)

    assert report(database, "day").buckets == [("2026-11-23", 4), ("2026-11-24", 3)]
    hours = dict(report(database, "hour").buckets)
    assert len(hours) == 24
    assert {h: n for h, n in hours.items() if n} == {"09": 2, "10": 1, "23": 1, "00": 1, "13": 2}


def test_per_queue_and_intent(database: Database) -> None:
    fill(database)
    r = report(database)

    queues = {q.queue: q for q in r.queues}
    plumbing, heating = queues["plumbing"], queues["heating"]
    assert (plumbing.offered, plumbing.answered, plumbing.abandoned) == (3, 2, 1)
    assert plumbing.service_level == pytest.approx(1 / 3)
    assert plumbing.asa_seconds == pytest.approx(22.5)
    assert plumbing.aht_seconds == pytest.approx(90)
    assert (heating.offered, heating.answered, heating.abandoned) == (3, 1, 0)
    assert heating.service_level == pytest.approx(1 / 2)
    assert heating.asa_seconds == pytest.approx(20)
    assert heating.aht_seconds == pytest.approx(300)
    # Idle configured queues are listed with zeros.
    assert queues["lift"].offered == 0 and queues["lift"].service_level is None
    assert r.intents == [("heating", 3), ("water", 2), ("—", 2)]


def test_per_operator_answered_talk_and_pauses(database: Database) -> None:
    fill(database)
    figures = {o.operator: o for o in report(database).operators}

    assert set(figures) == {"Anna", "Boris", "zed"}
    anna, boris, zed = figures["Anna"], figures["Boris"], figures["zed"]
    assert (anna.answered, anna.talk_seconds, anna.aht_seconds) == (2, 420, 210)
    assert (anna.pauses, anna.pause_seconds) == (2, pytest.approx(1800 + 600))
    assert (boris.answered, boris.talk_seconds, boris.aht_seconds) == (1, 60, 60)
    assert (boris.pauses, boris.pause_seconds) == (1, pytest.approx(3635))
    # Two pause rows in a row (a new reason) are two pauses of a minute each.
    assert (zed.answered, zed.aht_seconds, zed.pauses, zed.pause_seconds) == (0, None, 2, 120)


def test_sql_figures_equal_the_wallboards_python_figures(database: Database) -> None:
    """Same definitions: the GROUP BY path and the row-by-row path agree, live part included."""
    fill(database)
    since = datetime(2026, 11, 22, 21, tzinfo=UTC)
    until = datetime(2026, 11, 24, 21, tzinfo=UTC)
    waiting, current = {"heating": 2, "duty": 1}, {"heating": [30.0, 10.0]}
    with database.session() as session:
        stmt = select(Call).where(Call.started_at >= since, Call.started_at < until)
        rows = list(session.scalars(stmt))
        by_rows = reports.queue_figures(
            sf.plain_totals(
                [sf.queue_call(r, NOW) for r in rows if r.queue and r.queue_joined_at is not None],
                threshold=20,
            ),
            QUEUES,
            waiting=waiting,
            current_waits=current,
        )
        totals = call_sums.queue_totals(session, since, until, threshold=20, now=NOW)
    by_sql = reports.queue_figures(totals, QUEUES, waiting=waiting, current_waits=current)
    assert [q.queue for q in by_sql] == [q.queue for q in by_rows]
    for a, b in zip(by_sql, by_rows, strict=True):
        assert (a.offered, a.answered, a.abandoned, a.waiting, a.longest_wait_seconds) == (
            b.offered, b.answered, b.abandoned, b.waiting, b.longest_wait_seconds,
        )  # fmt: skip
        for x, y in ((a.service_level, b.service_level), (a.asa_seconds, b.asa_seconds),
                     (a.aht_seconds, b.aht_seconds)):  # fmt: skip
            assert x == pytest.approx(y)
