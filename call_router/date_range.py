"""The dates a query, a form or an API call may name.

`datetime` ends at years 1 and 9999, where adding a day or converting to UTC overflows: an
`OverflowError`, a 500 for whoever typed `9999-12-31`. Every date from outside is checked
against this range before any arithmetic, and refused with a clear message when outside it.
"""

from __future__ import annotations

from datetime import date

FIRST_YEAR = 1900
LAST_YEAR = 2999
RANGE_TEXT = f"between the years {FIRST_YEAR} and {LAST_YEAR}"


def usable(value: date) -> bool:
    """`value` (a date or a datetime) lies in the range (arithmetic on it cannot overflow)."""
    return FIRST_YEAR <= value.year <= LAST_YEAR


def checked(value: date, what: str = "a date") -> date:
    """`value` when usable; ValueError with a clear message otherwise."""
    if not usable(value):
        raise ValueError(f"{what} must be {RANGE_TEXT}")
    return value
