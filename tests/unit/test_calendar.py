"""The business calendar and flow conditions: pure, plain values."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from call_router.flows.calendar_schema import CalendarDoc
from call_router.flows.conditions import (
    ALWAYS_OPEN,
    CallFacts,
    build_calendar,
    evaluate,
    luhn_ok,
)
from call_router.flows.vocabulary import When

CAL = build_calendar(
    CalendarDoc.model_validate(
        {
            "timezone": "Europe/Moscow",
            "week": {
                "mon": "08:00-20:00",
                "tue": "08:00-20:00",
                "wed": "08:00-20:00",
                "thu": "08:00-20:00",
                "fri": ["08:00-13:00", "14:00-19:00"],
                "sat": "10:00-16:00",
                "sun": "closed",
            },
            "holidays": [
                "2026-01-01",
                {"date": "2026-12-31", "name": "New Year's Eve", "hours": ["08:00-16:00"]},
            ],
        }
    ),
    default_timezone=None,
)


def at(text: str) -> datetime:
    """A Moscow wall-clock time as an aware UTC datetime (what the engine's clock gives)."""
    return datetime.fromisoformat(text).replace(tzinfo=ZoneInfo("Europe/Moscow")).astimezone(UTC)


@pytest.mark.parametrize(
    ("local", "is_open"),
    [
        ("2026-11-23 08:00", True),  # Monday, opening minute
        ("2026-11-23 07:59", False),
        ("2026-11-23 19:59", True),
        ("2026-11-23 20:00", False),  # closing time is closed
        ("2026-11-27 13:30", False),  # Friday lunch break
        ("2026-11-27 14:00", True),
        ("2026-11-28 12:00", True),  # Saturday
        ("2026-11-29 12:00", False),  # Sunday closed
        ("2026-01-01 12:00", False),  # holiday on a Thursday
        ("2026-12-31 15:59", True),  # short day
        ("2026-12-31 16:00", False),
        ("2026-11-23 02:00", False),  # 23:00 UTC the day before
    ],
)
def test_business_hours_in_the_hotline_time_zone(local: str, is_open: bool) -> None:
    assert CAL.is_open(at(local)) is is_open


def test_naive_time_is_refused() -> None:
    with pytest.raises(ValueError):
        CAL.is_open(datetime(2026, 11, 23, 12, 0))


def test_always_open_without_a_calendar() -> None:
    assert ALWAYS_OPEN.is_open(datetime(2026, 11, 29, 3, 0, tzinfo=UTC))


def facts(**kw: object) -> CallFacts:
    base: dict[str, object] = {
        "now": at("2026-11-23 12:00"),
        "calendar": CAL,
        "variables": {"intent": "heating", "empty": ""},
    }
    base.update(kw)
    return CallFacts(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("test", "expected"),
    [
        ({"business_hours": True}, True),
        ({"business_hours": False}, False),
        ({"repeat_caller": True}, False),  # unknown (anonymous): not a repeat caller
        ({"var": {"name": "intent", "equals": "heating"}}, True),
        ({"var": {"name": "intent", "one_of": ["water", "lift"]}}, False),
        ({"var": {"name": "empty", "present": True}}, False),
        ({"var": {"name": "missing", "present": False}}, True),
        ({"incident": True}, False),
        ({"business_hours": True, "var": {"name": "intent", "equals": "water"}}, False),
    ],
)
def test_conditions(test: dict[str, object], expected: bool) -> None:
    assert evaluate(When.model_validate(test), facts()) is expected


def test_repeat_caller_and_incident_facts() -> None:
    assert evaluate(When.model_validate({"repeat_caller": True}), facts(recent_calls=2))
    assert not evaluate(When.model_validate({"repeat_caller": True}), facts(recent_calls=0))
    hot = facts(incident_categories=frozenset({"hot_water"}))
    assert evaluate(When.model_validate({"incident": True}), hot)
    assert not evaluate(When.model_validate({"incident": True, "incident_category": "lift"}), hot)


def test_empty_test_is_refused() -> None:
    with pytest.raises(ValueError):
        When.model_validate({})


@pytest.mark.parametrize(
    ("digits", "ok"),
    [("79927398713", True), ("79927398710", False), ("0", True), ("", False), ("12a", False)],
)
def test_luhn(digits: str, ok: bool) -> None:
    assert luhn_ok(digits) is ok


# --- incidents: expected end as typed by a supervisor, area matching ----------------------------


def test_incident_until_is_read_in_the_hotline_time_zone() -> None:
    from hotline.cli_incidents import parse_until

    now = at("2026-11-23 12:00")
    assert parse_until("18:00", now, "Europe/Moscow") == at("2026-11-23 18:00")
    assert parse_until("09:00", now, "Europe/Moscow") == at("2026-11-24 09:00")  # tomorrow
    assert parse_until("2026-11-25 08:30", now, "Europe/Moscow") == at("2026-11-25 08:30")
    import typer

    with pytest.raises(typer.BadParameter):
        parse_until("soon", now, "Europe/Moscow")
    # At the calendar's end the time zone's offset would overflow: refused, not a traceback.
    with pytest.raises(typer.BadParameter, match="between the years"):
        parse_until("9999-12-31 23:59", now, "America/Los_Angeles")


def test_incident_areas_match_case_insensitively_and_empty_is_the_whole_city() -> None:
    from call_router.flow_models import Incident

    assert Incident(areas=[]).matches(None)
    assert Incident(areas=["Lenina 5"]).matches(" lenina 5 ")
    assert not Incident(areas=["Lenina 5"]).matches(None)
    assert not Incident(areas=["Lenina 5"]).matches("Lenina 7")
