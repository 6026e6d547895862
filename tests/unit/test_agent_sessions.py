"""The agent-session figures (call_router/agent_sessions.py) from plain values."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from call_router.agent_sessions import (
    CallLeg,
    StateEvent,
    agent_figures,
    csv_rows,
    spans,
)

MSK = ZoneInfo("Europe/Moscow")  # UTC+3


def at(day: int, hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, second, tzinfo=MSK)


def test_a_shift_adds_up() -> None:
    events = [
        StateEvent("1001", at(1, 9), "login"),
        StateEvent("1001", at(1, 10), "pause", "lunch"),
        StateEvent("1001", at(1, 10, 30), "unpause"),
        # A second log-in while logged in (other queues) starts no new session.
        StateEvent("1001", at(1, 11), "login"),
        StateEvent("1001", at(1, 12), "pause", "training"),
        StateEvent("1001", at(1, 12, 10), "pause", "lunch"),
        StateEvent("1001", at(1, 12, 20), "logout"),
    ]
    legs = [
        CallLeg("1001", at(1, 9, 10), at(1, 9, 15)),  # 300 s inbound
        CallLeg("1001", at(1, 11, 0), at(1, 11, 2)),  # 120 s inbound
        CallLeg("1001", at(1, 11, 10), at(1, 11, 10, 40), inbound=False),  # a callback
    ]
    missed = [("1001", at(1, 9, 30))]
    days, period = agent_figures(
        events,
        legs,
        missed,
        first=date(2026, 12, 1),
        last=date(2026, 12, 1),
        zone=MSK,
        wrapup_seconds=10,
        names={"1001": "Lena"},
    )
    (day,) = days
    (total,) = period
    assert day.name == "Lena" and day.day == date(2026, 12, 1)
    assert (day.logins, day.logouts, day.pauses) == (2, 1, 3)
    assert day.logged_in_seconds == 3 * 3600 + 20 * 60
    assert day.paused_seconds == 30 * 60 + 20 * 60
    assert day.pause_reasons == {"lunch": 40 * 60, "training": 10 * 60}
    assert (day.answered, day.callbacks, day.missed) == (2, 1, 1)
    assert day.talk_seconds == 420 and day.callback_seconds == 40 and day.wrapup_seconds == 20
    available = 3 * 3600 + 20 * 60 - 50 * 60
    assert day.ready_seconds == available - 480
    assert day.occupancy == round(480 / available, 3)
    assert total.as_dict() == {**day.as_dict(), "day": None}


def test_a_night_shift_is_split_at_local_midnight_and_an_open_one_stops_at_now() -> None:
    events = [
        # Logged in before the range: the state it entered the range in.
        StateEvent("1002", at(1, 22), "login"),
        StateEvent("1002", at(1, 23, 50), "pause", None),
        StateEvent("1002", at(2, 0, 20), "unpause"),
    ]
    legs = [CallLeg("1002", at(1, 23, 59), at(2, 0, 1))]
    now = at(2, 1)
    days, period = agent_figures(
        events,
        legs,
        [],
        first=date(2026, 12, 1),
        last=date(2026, 12, 3),
        zone=MSK,
        wrapup_seconds=0,
        names={},
        now=now,
    )
    first, second, third = days
    assert first.name == "1002"
    assert first.logged_in_seconds == 7200 and second.logged_in_seconds == 3600
    assert first.paused_seconds == 600 and second.paused_seconds == 1200
    assert first.pause_reasons == {"unspecified": 600}
    assert first.talk_seconds == 60 and second.talk_seconds == 60
    assert (first.answered, second.answered) == (1, 0)
    assert third.logged_in_seconds == 0 and third.occupancy is None
    assert period[0].logged_in_seconds == 3 * 3600


def test_spans_ignore_a_pause_while_logged_out() -> None:
    start, end = at(1, 0), at(2, 0)
    result = spans(
        [
            StateEvent("1", at(1, 8), "pause", "x"),
            StateEvent("1", at(1, 9), "login"),
            StateEvent("1", at(1, 10), "logout"),
            StateEvent("1", at(1, 11), "unpause"),
        ],
        start,
        end,
    )
    assert [(s.begin, s.end, s.paused) for s in result] == [(at(1, 9), at(1, 10), False)]


def test_csv_names_every_column_once_per_row() -> None:
    events = [StateEvent("7", datetime(2026, 12, 1, 6, tzinfo=UTC), "login")]
    days, period = agent_figures(
        events,
        [],
        [],
        first=date(2026, 12, 1),
        last=date(2026, 12, 1),
        zone=UTC,
        wrapup_seconds=0,
        names={"7": "=cmd"},
        now=datetime(2026, 12, 1, 7, tzinfo=UTC),
    )
    header, day_row, period_row = csv_rows([*days, *period])
    assert len(header) == len(day_row) == len(period_row)
    row = dict(zip(header, day_row, strict=True))
    assert row["day"] == "2026-12-01" and row["name"] == "=cmd"
    assert row["logged_in_seconds"] == 3600 and row["occupancy"] == 0.0
    assert dict(zip(header, period_row, strict=True))["day"] == "period"
