"""The forecast's pure parts with plain values: local quarter hours across a DST change, the
operators' logged-in time split over quarter hours, and the CSV shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from call_router.erlang import ErlangError, Target
from call_router.staffing import (
    CSV_COLUMNS,
    AgentEvent,
    CallSample,
    Window,
    csv_rows,
    forecast,
    per_cell,
    staffed_seconds,
)

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(y: int, m: int, d: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, ss, tzinfo=BERLIN).astimezone(UTC)


def test_a_local_quarter_hour_stays_put_across_the_clock_change() -> None:
    # Berlin leaves summer time on 25 Oct 2026: 09:00 local is 07:00 UTC before, 08:00 after.
    window = Window.ending(berlin(2026, 11, 4, 12), weeks=2, zone=BERLIN)
    calls = [
        CallSample(berlin(2026, 10, 21, 9, 5), 100.0),
        CallSample(berlin(2026, 10, 28, 9, 5), 100.0),
    ]
    rows = forecast(window, calls, [], Target(average_wait=60))
    nine = [r for r in rows if r.weekday == 2 and r.time == "09:00"]
    assert len(nine) == 1 and nine[0].calls == 1.0  # 2 calls over 2 Wednesdays
    assert sum(r.calls for r in rows) == 1.0


def test_logged_in_time_is_split_over_quarter_hours() -> None:
    window = Window.ending(datetime(2026, 11, 9, 12, tzinfo=UTC), weeks=1, zone=UTC)
    events = [
        AgentEvent("1001", datetime(2026, 11, 2, 9, 10, tzinfo=UTC), "login"),
        AgentEvent("1001", datetime(2026, 11, 2, 9, 20, tzinfo=UTC), "pause"),
        AgentEvent("1001", datetime(2026, 11, 2, 9, 25, tzinfo=UTC), "unpause"),
        AgentEvent("1001", datetime(2026, 11, 2, 9, 40, tzinfo=UTC), "logout"),
    ]
    logged, ready = staffed_seconds(window, events)
    cells, ready_cells = per_cell(window, logged), per_cell(window, ready)
    assert cells[(0, 36)] == pytest.approx(5 * 60 / 900)  # 09:10-09:15
    assert cells[(0, 37)] == pytest.approx(1.0)  # 09:15-09:30
    assert ready_cells[(0, 37)] == pytest.approx(10 * 60 / 900)  # paused 09:20-09:25
    assert cells[(0, 38)] == pytest.approx(10 * 60 / 900)  # 09:30-09:40
    assert (0, 39) not in cells


def test_still_logged_in_counts_to_the_end_of_the_history() -> None:
    window = Window.ending(datetime(2026, 11, 9, 12, tzinfo=UTC), weeks=1, zone=UTC)
    before = AgentEvent("1002", window.start - timedelta(days=3), "login")
    logged, _ = staffed_seconds(window, [before])
    assert sum(logged.values()) == pytest.approx(7 * 24 * 3600)


def test_weeks_out_of_range_is_a_clear_error() -> None:
    with pytest.raises(ErlangError, match="weeks"):
        Window.ending(datetime(2026, 11, 9, tzinfo=UTC), weeks=0, zone=UTC)
    with pytest.raises(ErlangError, match="weeks"):
        Window.ending(datetime(2026, 11, 9, tzinfo=UTC), weeks=53, zone=UTC)


def test_csv_has_a_header_and_a_line_per_quarter_hour() -> None:
    window = Window.ending(datetime(2026, 11, 9, 12, tzinfo=UTC), weeks=1, zone=UTC)
    lines = list(csv_rows(forecast(window, [], [], Target(service_level=0.8))))
    assert lines[0] == list(CSV_COLUMNS) and len(lines) == 1 + 7 * 96
    assert lines[1][:2] == ["2026-11-09", "00:00"]
