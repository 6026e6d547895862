"""Pure parts of the read side: what "today" means, how durations and timestamps print."""

from __future__ import annotations

from base64 import urlsafe_b64encode
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from call_router.call_search import CallPosition, start_of_day
from dashboard.main import format_duration
from dashboard.routes.schemas import iso_utc, recording_reference

MOSCOW = ZoneInfo("Europe/Moscow")


def test_today_starts_at_local_midnight_not_utc_midnight() -> None:
    # 22:30 UTC on the 23rd is already 01:30 on the 24th in Moscow (UTC+3).
    now = datetime(2026, 11, 23, 22, 30, tzinfo=UTC)

    start = start_of_day(now, MOSCOW)

    assert start.astimezone(UTC) == datetime(2026, 11, 23, 21, 0, tzinfo=UTC)
    assert start_of_day(now, ZoneInfo("UTC")) == datetime(2026, 11, 23, tzinfo=UTC)


def test_start_of_day_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError):
        start_of_day(datetime(2026, 11, 23, 12, 0), MOSCOW)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(None, "—"), (0, "0:00"), (9, "0:09"), (75, "1:15"), (3600, "60:00")]
)
def test_durations_print_as_minutes_and_seconds(seconds: int | None, shown: str) -> None:
    assert format_duration(seconds) == shown


def test_timestamps_are_fixed_width_utc_with_z() -> None:
    whole = datetime(2026, 11, 23, 19, 55, tzinfo=timezone(timedelta(hours=3)))
    fraction = datetime(2026, 11, 23, 16, 55, 0, 500, tzinfo=UTC)

    assert iso_utc(whole) == "2026-11-23T16:55:00.000000Z"
    assert iso_utc(fraction) == "2026-11-23T16:55:00.000500Z"
    assert iso_utc(whole) < iso_utc(fraction)


def test_a_cursor_round_trips_and_rejects_anything_else() -> None:
    position = CallPosition(datetime(2026, 11, 23, 19, 55, 0, 500, tzinfo=UTC), 42)
    assert CallPosition.from_token(position.token()) == position
    for bad in ("", "!!", "bm90IGEgY3Vyc29y", CallPosition.token.__name__):
        with pytest.raises(ValueError):
            CallPosition.from_token(bad)
    # A cursor made up at the calendar's end would overflow when bound to the query (a 500).
    for edge in ("9999-12-31T23:59:59-12:00|1", "0001-01-01T00:00:00+05:00|1"):
        made_up = urlsafe_b64encode(edge.encode()).decode()
        with pytest.raises(ValueError):
            CallPosition.from_token(made_up)


@pytest.mark.parametrize(
    ("stored", "shown"),
    [
        ("/srv/hotline/recordings/utterances/1.5-1.wav", "utterances/1.5-1.wav"),
        ("utterances/1.5-1.wav", "utterances/1.5-1.wav"),
        ("/etc/passwd", None),
        ("/srv/hotline/recordings/../secrets.wav", None),
        ("../outside.wav", None),
        ("/srv/hotline/recordings", None),
        ("", None),
        (None, None),
    ],
)
def test_utterances_are_shown_relative_to_the_recordings_folder(
    stored: str | None, shown: str | None
) -> None:
    assert recording_reference(stored, Path("/srv/hotline/recordings")) == shown
