"""Call search and the home page's lists: filters, keyset pages, counts, options, today's calls.

Nothing here writes. Every function takes an open `Session` so the caller decides the
transaction and the database (SQLite or PostgreSQL, same SQL).
"""

from __future__ import annotations

from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass
from datetime import UTC, datetime, time, tzinfo
from typing import Any

from sqlalchemy import Select, func, literal, select, text, tuple_
from sqlalchemy.orm import Session, selectinload

from call_router import date_range, tenant_wall
from call_router.models import Call
from call_router.numbers import ANONYMOUS, normalize_number
from call_router.sql_functions import utc_at

MAX_PAGE = 1000
# A busy day of a city hotline fits; the page refreshes every few seconds, so keep it bounded.
TODAY_LIMIT = 500


@dataclass(frozen=True)
class CallFilter:
    """The call log's search form. Every field is optional; all given ones must match.

    `caller` is spelled however the user typed it (`+7 495 123-45-67`, `8 495 1234567`): it is
    normalised exactly as the call log normalised it when the call came in (`country` must be
    the settings' `country_code`), then matched on equality so the index on caller_number works.
    `since` is inclusive, `until` exclusive (a date range "1st to 3rd" is [1st 00:00, 4th 00:00)).
    """

    caller: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    queue: str | None = None
    intent: str | None = None
    outcome: str | None = None
    operator: str | None = None
    direction: str | None = None


def _filtered(stmt: Select[Any], flt: CallFilter, country: str) -> Select[Any] | None:
    """`stmt` narrowed by `flt`; None when the filter can match nothing."""
    if flt.caller is not None:
        wanted = normalize_number(flt.caller, country)
        # Garbage or empty input normalises to "anonymous": a search for "abc" must not list
        # every withheld-number call. Only an explicit "anonymous" search does that.
        if wanted == ANONYMOUS and flt.caller.strip().lower() != ANONYMOUS:
            return None
        stmt = stmt.where(Call.caller_number == wanted)
    if flt.since is not None:
        stmt = stmt.where(Call.started_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(Call.started_at < flt.until)
    # Exact matches: these are codes from a closed vocabulary (queues, intents, outcomes) or an
    # operator's name picked from a list, and equality keeps the column indexes usable.
    for column, value in (
        (Call.queue, flt.queue),
        (Call.intent, flt.intent),
        (Call.outcome, flt.outcome),
        (Call.operator, flt.operator),
        (Call.direction, flt.direction),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


@dataclass(frozen=True)
class CallPosition:
    """Where a page of the newest-first call log ended: the next page starts after it.

    Keyset pagination: unlike an offset, the database seeks straight to it through the
    (started_at, id) index however deep the page, and new calls do not shift the pages.
    """

    started_at: datetime
    call_id: int

    def token(self) -> str:
        """An opaque, URL-safe cursor for the API."""
        raw = f"{self.started_at.astimezone(UTC).isoformat()}|{self.call_id}"
        return urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> CallPosition:
        """The position in a cursor; ValueError for anything this module did not write."""
        try:
            raw = urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            when, call_id = raw.split("|")
            started_at = datetime.fromisoformat(when)
            position = cls(started_at, int(call_id))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("not a call log cursor") from exc
        if started_at.tzinfo is None or not date_range.usable(started_at):
            raise ValueError("not a call log cursor")
        return position


def list_calls(
    session: Session,
    *,
    caller: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    country: str = "RU",
    where: CallFilter | None = None,
    after: CallPosition | None = None,
) -> list[Call]:
    """Calls newest first, narrowed by `where` (or the older `caller`/`since` shortcuts).

    `after`: only calls older than that position (the next page of a keyset pagination).
    """
    flt = where or CallFilter(caller=caller, since=since)
    stmt = _filtered(select(Call), flt, country)
    if stmt is None:
        return []
    if after is not None:
        stmt = stmt.where(
            tuple_(Call.started_at, Call.id)
            < tuple_(utc_at(after.started_at), literal(after.call_id))
        )
    stmt = (
        stmt.order_by(Call.started_at.desc(), Call.id.desc())
        .limit(max(0, min(limit, MAX_PAGE)))
        .offset(max(0, offset))
    )
    return list(session.scalars(stmt))


def count_calls(
    session: Session, where: CallFilter, *, country: str = "RU", cap: int | None = None
) -> int:
    """How many calls `where` matches (for the call log's page count).

    `cap`: stop counting there (the result is then at most `cap`). An exact count reads
    every matching index entry - ~0.1-0.3 s for an unfiltered million calls - while a page
    needs only to know whether there are more than its links can reach.
    """
    if cap is None:
        stmt = _filtered(select(func.count()).select_from(Call), where, country)
        return 0 if stmt is None else int(session.scalar(stmt) or 0)
    matching = _filtered(select(Call.id), where, country)
    if matching is None:
        return 0
    bounded = matching.limit(max(0, cap)).subquery()
    return int(session.scalar(select(func.count()).select_from(bounded)) or 0)


_DISTINCT_COLUMNS = ("queue", "intent", "outcome", "operator")


def distinct_values(session: Session, column_name: str, *, limit: int = 200) -> list[str]:
    """Values seen in a filterable column (queue, intent, outcome, operator): form options.

    A loose index scan (a recursive CTE hopping from one value to the next through the
    column's index): a few dozen index probes instead of reading every row, which a plain
    DISTINCT does on PostgreSQL (no skip scan) - ~100 ms at a million calls versus < 1 ms.
    """
    if column_name not in _DISTINCT_COLUMNS:
        raise KeyError(column_name)
    if not tenant_wall.scope_of(session).everything:
        # Behind a tenant wall: an ORM query, which the wall narrows (raw SQL it would not).
        column = getattr(Call, column_name)
        walled = (
            select(column)
            .where(column.is_not(None), column != "")
            .distinct()
            .order_by(column)
            .limit(limit)
        )
        return [str(value) for value in session.scalars(walled)]
    # The name is one of the fixed identifiers above, never user input.
    sql = text(
        f"""
        WITH RECURSIVE seen(value) AS (
            SELECT min({column_name}) FROM calls
            UNION ALL
            SELECT (SELECT min({column_name}) FROM calls WHERE {column_name} > seen.value)
            FROM seen WHERE seen.value IS NOT NULL
        )
        SELECT value FROM seen WHERE value IS NOT NULL AND value <> '' LIMIT :limit
        """
    )
    return [str(value) for value in session.scalars(sql, {"limit": limit})]


def start_of_day(now: datetime, tz: tzinfo) -> datetime:
    """Midnight of `now`'s local date in `tz`, as an aware datetime (comparable to UTC columns)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time.min, tzinfo=tz)


def todays_calls(
    session: Session, now: datetime, tz: tzinfo, *, limit: int = TODAY_LIMIT
) -> list[Call]:
    """Calls started since local midnight in `tz` (the hotline's day, not UTC's), newest first."""
    return list_calls(session, since=start_of_day(now, tz), limit=limit)


def call_with_events(session: Session, call_id: int) -> Call | None:
    """One call with its timeline loaded (events ordered by time), or None."""
    stmt = select(Call).where(Call.id == call_id).options(selectinload(Call.events))
    return session.scalars(stmt).one_or_none()
