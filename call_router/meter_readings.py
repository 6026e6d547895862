"""Meter readings submitted by phone: what is accepted, what is refused and why. Pure.

A reading is a whole number of the meter's units (m³ for water, the heat meter's own unit),
as the caller keys it in. It is checked against the last reading of the same payer and meter:
never lower (meters do not run backwards), and not more than a plausible growth per month
for that kind of meter (a typo with one digit too many is caught here, before it is billed).
The store (call_router/meter_store.py) and the flow services only ask these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal, get_args

MeterKind = Literal["cold_water", "hot_water", "heat"]
METER_KINDS: tuple[MeterKind, ...] = get_args(MeterKind)

# Units a household can plausibly use in one month; a supervisor overrides them per flow
# (`max_monthly_growth` of the meter_check action) for a building with large flats.
DEFAULT_MAX_MONTHLY_GROWTH: dict[MeterKind, int] = {
    "cold_water": 40,
    "hot_water": 30,
    "heat": 10,
}
# The longest reading a meter shows (9 digits; water meters show 5-8).
MAX_READING_DIGITS = 9
# Growth is allowed for at least one month: two readings a week apart may differ by a
# month's use (the first one may have been taken late).
MIN_MONTHS = 1.0
DAYS_PER_MONTH = 30.44
# A phone reading may be corrected or deleted by the same number within this window.
DEFAULT_AMEND_WINDOW = timedelta(days=3)

Problem = Literal["not_digits", "too_long", "below_last", "implausible_growth"]


@dataclass(frozen=True)
class PreviousReading:
    value: int
    submitted_at: datetime


@dataclass(frozen=True)
class ReadingCheck:
    """The verdict on one reading; `problem` None means accepted."""

    value: int | None
    problem: Problem | None = None
    last: int | None = None
    # The most that was allowed, for "implausible_growth" (for the log and the dashboard).
    limit: int | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


def meter_kind(text: str) -> MeterKind:
    """A meter kind from a flow variable or the CLI; ValueError names the known ones."""
    value = text.strip().lower()
    for kind in METER_KINDS:
        if kind == value:
            return kind
    raise ValueError(f"unknown meter {text!r}; meters: {', '.join(METER_KINDS)}")


def parse_reading(digits: str) -> int | ReadingCheck:
    """The reading as a number, or a refusal (not digits, too long)."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return ReadingCheck(None, "not_digits")
    if len(digits.lstrip("0")) > MAX_READING_DIGITS:
        return ReadingCheck(None, "too_long")
    return int(digits)


def months_between(earlier: datetime, later: datetime) -> float:
    return max((later - earlier).total_seconds() / 86400 / DAYS_PER_MONTH, 0.0)


def check_reading(
    digits: str,
    kind: MeterKind,
    previous: PreviousReading | None,
    now: datetime,
    max_monthly_growth: Mapping[MeterKind, int] | None = None,
) -> ReadingCheck:
    """Is `digits` an acceptable new reading after `previous` (None: the meter's first)?"""
    parsed = parse_reading(digits)
    if isinstance(parsed, ReadingCheck):
        return parsed
    if previous is None:
        return ReadingCheck(parsed)
    if parsed < previous.value:
        return ReadingCheck(parsed, "below_last", last=previous.value)
    limits: dict[MeterKind, int] = {**DEFAULT_MAX_MONTHLY_GROWTH, **(max_monthly_growth or {})}
    months = max(months_between(previous.submitted_at, now), MIN_MONTHS)
    limit = previous.value + int(limits[kind] * months)
    if parsed > limit:
        return ReadingCheck(parsed, "implausible_growth", last=previous.value, limit=limit)
    return ReadingCheck(parsed, last=previous.value)


def newest(*readings: PreviousReading | None) -> PreviousReading | None:
    """The latest of the known previous readings (phoned in, or billing's)."""
    known = [r for r in readings if r is not None]
    return max(known, key=lambda r: r.submitted_at) if known else None


def may_amend(
    submitted_at: datetime,
    submitted_by: str | None,
    source: str,
    caller_number: str | None,
    now: datetime,
    window: timedelta = DEFAULT_AMEND_WINDOW,
) -> bool:
    """May this caller correct or delete that reading? Only their own phone reading, recently.

    Caller ID is the only proof of who is calling; an anonymous caller can change nothing.
    """
    if source != "phone" or not caller_number or submitted_by != caller_number:
        return False
    return timedelta(0) <= now - submitted_at <= window
