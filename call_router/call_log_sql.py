# The call log's SQL plumbing: idempotent inserts, the writer's fixed-shape burst statements,
# and the cleaning of raw values (caller ID, channel names) into the columns' sizes.

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Insert, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from call_router import json_text
from call_router.models import Call, CallEvent

MAX_KEY = 160
MAX_KIND = 32


# Fixed-shape statements of the writer's bursts: compiled once, then taken from the cache.
_CALL_IDS = select(Call.linkedid, Call.id).where(
    Call.linkedid.in_(bindparam("linkedids", expanding=True))
)


# The writer's timeline bursts, straight to the driver: SQLAlchemy's per-row parameter
# building cost more CPU than the database's own work (BENCHMARKS.md, "FastAGI server").
# SQLite: one prepared statement run for every row (sqlite3's executemany, in C).
_EVENTS_SQLITE = (
    "INSERT INTO call_events (call_id, kind, key, at, data) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (call_id, key) DO NOTHING"
)
# PostgreSQL: one statement of fixed text for the whole burst, its rows as one JSON array
# (one C-encoded parameter; psycopg's array parameters are escaped element by element in
# Python). Taken in array order, so the ids follow the submission order.
_EVENTS_POSTGRESQL = (
    "INSERT INTO call_events (call_id, kind, key, at, data) "
    "SELECT e.c, e.k, e.y, e.a, e.d FROM ROWS FROM (json_to_recordset(%(rows)s::json) "
    "AS (c integer, k varchar, y varchar, a timestamp, d json)) WITH ORDINALITY AS e "
    "ORDER BY e.ordinality ON CONFLICT (call_id, key) DO NOTHING"
)


EventRow = tuple[int, str, str, datetime, dict[str, Any]]
_EVENT_COLUMNS = ("call_id", "kind", "key", "at", "data")


def insert_events(session: Session, rows: list[EventRow]) -> None:
    """INSERT .. ON CONFLICT DO NOTHING of many timeline rows (call_id, kind, key, at, data),
    stored exactly as the ORM stores them (the columns' own bind processors: naive UTC times,
    JSON text as the dialect's serializer writes it)."""
    table: Table = CallEvent.__table__  # type: ignore[assignment]
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name not in ("sqlite", "postgresql"):
        session.execute(
            insert_ignore(session, table, ["call_id", "key"]),
            [dict(zip(_EVENT_COLUMNS, row, strict=True)) for row in rows],
        )
        return
    at_bind = table.c.at.type.bind_processor(dialect)
    if dialect.name == "sqlite":
        # What the JSON column's bind processor does for a dict (the data is never None
        # here): the engine's serializer (call_router/db.py), called directly.
        dumps = json_text.dumps
        connection.exec_driver_sql(
            _EVENTS_SQLITE,
            [
                (call_id, kind, key, at_bind(at) if at_bind else at, dumps(data))
                for call_id, kind, key, at, data in rows
            ],
        )
        return
    document = [
        {"c": call_id, "k": kind, "y": key, "a": _iso(at_bind(at) if at_bind else at), "d": data}
        for call_id, kind, key, at, data in rows
    ]
    connection.exec_driver_sql(_EVENTS_POSTGRESQL, {"rows": json_text.dumps(document)})


def _iso(value: Any) -> Any:
    """A naive UTC datetime (the `at` column, bound) as PostgreSQL reads it from JSON."""
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value


def known_call_ids(session: Session, linkedids: list[str]) -> dict[str, int]:
    """The ids of those calls that have a row."""
    return {lid: cid for lid, cid in session.execute(_CALL_IDS, {"linkedids": linkedids})}


def call_by_linkedid(session: Session, linkedid: str) -> Call | None:
    return session.scalars(select(Call).where(Call.linkedid == linkedid)).first()


def insert_ignore(session: Session, table: Table, conflict_columns: list[str]) -> Insert:
    """INSERT .. ON CONFLICT DO NOTHING on PostgreSQL and SQLite alike."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    if dialect == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=conflict_columns)
    raise NotImplementedError(f"call log needs PostgreSQL or SQLite, not {dialect}")


def seconds_before(at: datetime, seconds: int | None) -> datetime | None:
    if seconds is None or seconds < 0:
        return None
    try:
        return at - timedelta(seconds=seconds)
    except OverflowError:  # before year 1: a broken clock or counter, not a time
        return None


def cap(value: str | None, length: int) -> str | None:
    return value[:length] if value else None


def printable(value: str | None) -> str | None:
    if value is None:
        return None
    if value.isprintable():  # the usual case: nothing to drop (no loop over the characters)
        return value.strip() or None
    return "".join(ch for ch in value if ch.isprintable()).strip() or None


def dialable(value: str | None) -> str | None:
    if value is None:
        return None
    return "".join(ch for ch in value if ch.isascii() and (ch.isdigit() or ch in "+*#")) or None
