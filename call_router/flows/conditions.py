"""Flow conditions and the business calendar. Pure: every input is a plain value.

The engine gathers the facts about a call (the time, its variables, whether the number called
recently, an active incident) into `CallFacts`; `evaluate` only compares.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from call_router.flows.calendar_schema import CalendarDoc
from call_router.flows.vocabulary import When

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Span = tuple[time, time]


class CalendarError(ValueError):
    """The calendar names an unknown time zone or an impossible date."""


@dataclass(frozen=True)
class BusinessCalendar:
    """Opening hours per weekday; holidays close the day or shorten it."""

    tz: tzinfo
    week: dict[int, tuple[Span, ...]]
    holidays: dict[date, tuple[Span, ...]] = field(default_factory=dict)

    def spans_on(self, day: date) -> tuple[Span, ...]:
        if day in self.holidays:
            return self.holidays[day]
        return self.week.get(day.weekday(), ())

    def is_open(self, now: datetime) -> bool:
        """Is the hotline within business hours at `now` (an aware datetime)?"""
        if now.tzinfo is None:
            raise ValueError("is_open needs an aware datetime")
        local = now.astimezone(self.tz)
        moment = local.time()
        return any(start <= moment < end for start, end in self.spans_on(local.date()))


# Without a calendar file the hotline counts as always open: nothing is sent to voicemail.
ALWAYS_OPEN = BusinessCalendar(
    tz=ZoneInfo("UTC"), week={d: ((time(0), time.max),) for d in range(7)}
)


def _span(text: str) -> Span:
    start, end = text.split("-")
    return _clock(start), _clock(end)


def _clock(text: str) -> time:
    hours, minutes = (int(x) for x in text.split(":"))
    # 24:00 closes at the end of the day.
    return time.max if (hours, minutes) == (24, 0) else time(hours, minutes)


def resolve_timezone(name: str | None) -> tzinfo:
    """A named IANA zone, or the machine's own zone when none is configured."""
    if not name:
        local = datetime.now().astimezone().tzinfo
        assert local is not None
        return local
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(f"unknown time zone {name!r}") from exc


def build_calendar(doc: CalendarDoc, default_timezone: str | None) -> BusinessCalendar:
    tz = resolve_timezone(doc.timezone or default_timezone)
    week: dict[int, tuple[Span, ...]] = {}
    for weekday, spans in doc.week.items():
        listed = [spans] if isinstance(spans, str) else spans
        week[WEEKDAYS.index(weekday)] = tuple(_span(s) for s in listed if s != "closed")
    holidays: dict[date, tuple[Span, ...]] = {}
    for holiday in doc.holidays:
        try:
            day = date.fromisoformat(holiday.date)
        except ValueError as exc:
            raise CalendarError(f"{holiday.date!r} is not a date") from exc
        holidays[day] = tuple(_span(s) for s in holiday.hours)
    return BusinessCalendar(tz=tz, week=week, holidays=holidays)


@dataclass(frozen=True)
class CallFacts:
    now: datetime
    calendar: BusinessCalendar
    variables: dict[str, str]
    # Other calls from this number in the window: None when unknown (anonymous, no lookup).
    recent_calls: int | None = None
    incident_categories: frozenset[str] = frozenset()


def evaluate(test: When, facts: CallFacts) -> bool:
    """All parts of the test hold. An unknown fact (anonymous caller) counts as false."""
    results: list[bool] = []
    if test.business_hours is not None:
        results.append(facts.calendar.is_open(facts.now) == test.business_hours)
    if test.repeat_caller is not None:
        repeat = facts.recent_calls is not None and facts.recent_calls > 0
        results.append(repeat == test.repeat_caller)
    if test.incident is not None:
        if test.incident_category:
            active = test.incident_category in facts.incident_categories
        else:
            active = bool(facts.incident_categories)
        results.append(active == test.incident)
    if test.var is not None:
        value = facts.variables.get(test.var.name)
        if test.var.present is not None:
            results.append((value not in (None, "")) == test.var.present)
        elif test.var.one_of is not None:
            results.append(value in test.var.one_of)
        else:
            results.append(value == test.var.equals)
    return all(results)


def repeat_window(test: When) -> timedelta:
    return timedelta(hours=test.repeat_caller_hours)


def luhn_ok(digits: str) -> bool:
    """The Luhn check digit, as many payer/account codes carry."""
    if not digits.isdigit():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0
