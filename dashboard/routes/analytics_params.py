"""The analytics routes' shared query parameters: a period of local days, a tenant."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import HTTPException, Query

from call_router import date_range

MAX_DAYS = 93
DateText = Annotated[str | None, Query(max_length=10)]
TenantParam = Annotated[str | None, Query(max_length=32)]


def local_days(
    zone: ZoneInfo,
    date_from: str | None,
    date_to: str | None,
    *,
    default_days: int = 1,
    max_days: int = MAX_DAYS,
) -> tuple[date, date]:
    """The local days date_from..date_to (either may be missing: to defaults to today, from to
    `default_days` ending there), in order; a clear 422 for a bad date or a too-long period."""
    today = datetime.now(zone).date()
    try:
        last = date.fromisoformat(date_to) if date_to else today
        first = date.fromisoformat(date_from) if date_from else None
    except ValueError as exc:
        raise HTTPException(status_code=422, detail="dates are YYYY-MM-DD") from exc
    if not all(date_range.usable(day) for day in (last, first) if day is not None):
        raise HTTPException(status_code=422, detail=f"dates are {date_range.RANGE_TEXT}")
    first = first or last - timedelta(default_days - 1)
    if first > last:
        first, last = last, first
    if (last - first).days >= max_days:
        raise HTTPException(status_code=422, detail=f"at most {max_days} days")
    return first, last
