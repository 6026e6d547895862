"""The business calendar's file (ivr_flows/calendar.yaml): opening hours per weekday, holidays
and short days, the time zone."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from call_router.flows.vocabulary import Strict

HOURS = re.compile(r"^([01]\d|2[0-4]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


def _check_hours(value: str | list[str]) -> list[str]:
    spans = [value] if isinstance(value, str) else value
    out = []
    for span in spans:
        span = span.replace(" ", "")
        if span == "closed":
            continue
        m = HOURS.match(span)
        if m is None:
            raise ValueError(f"{span!r} is not HH:MM-HH:MM or `closed`")
        if (int(m[1]), int(m[2])) >= (int(m[3]), int(m[4])):
            raise ValueError(f"{span!r} ends before it starts")
        out.append(span)
    return out


class Holiday(Strict):
    date: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    name: str = ""
    # A short working day instead of a day off, e.g. ["08:00-16:00"].
    hours: list[str] = Field(default_factory=list)

    _hours = field_validator("hours")(classmethod(lambda cls, v: _check_hours(v)))


class CalendarDoc(Strict):
    timezone: str | None = None
    week: dict[Weekday, str | list[str]]
    holidays: list[Holiday] = Field(default_factory=list)

    @field_validator("week")
    @classmethod
    def _week_hours(cls, value: dict[str, str | list[str]]) -> dict[str, str | list[str]]:
        return {day: _check_hours(spans) for day, spans in value.items()}

    @field_validator("holidays", mode="before")
    @classmethod
    def _dates_as_text(cls, value: object) -> object:
        # YAML reads 2026-01-01 as a date: accept it as written, alone or with a name.
        if not isinstance(value, list):
            return value
        out: list[object] = []
        for item in value:
            if isinstance(item, dict):
                item = {**item, "date": str(item["date"])} if "date" in item else item
            else:
                item = {"date": str(item)}
            out.append(item)
        return out
