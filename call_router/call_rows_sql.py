# The FastAGI writer's burst statements on call rows, straight to the driver: the arrivals
# (new rows, each with its dialled number's tenant by subquery; the ids created) and the
# menu results (one UPDATE per burst).

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table
from sqlalchemy.orm import Session

from call_router import json_text
from call_router.call_log_core import MenuResult
from call_router.call_log_sql import cap
from call_router.models import Call

# The columns a new call row gets from its arrival (call_log_core._call_values), in the order
# the statements below take them; `direction` is the model's default, spelt out because the
# driver does not apply Python-side defaults.
ARRIVAL_COLUMNS = (
    "linkedid",
    "caller_number",
    "caller_number_raw",
    "caller_name",
    "channel",
    "dialed_number",
    "started_at",
    "node",
)
_DIRECTION = "inbound"
_TARGET = ", ".join((*ARRIVAL_COLUMNS, "direction", "tenant_id"))
# The tenant whose number was dialled (call_router/tenants.tenant_for_number): NULL for the
# centre's numbers and unknown ones. dialled_numbers.number is the primary key: one row at most.
_TENANT = "(SELECT d.tenant_id FROM dialled_numbers d WHERE d.number = {})"

# SQLite: the burst as one JSON array of rows (json_each, in array order). "WHERE true":
# SQLite's documented way to keep an INSERT .. SELECT's upsert clause unambiguous.
_SQLITE_VALUES = ", ".join(f"json_extract(j.value, '$[{i}]')" for i in range(len(ARRIVAL_COLUMNS)))
_SQLITE_DIALLED = f"json_extract(j.value, '$[{ARRIVAL_COLUMNS.index('dialed_number')}]')"
INSERT_ARRIVALS_SQLITE = (
    f"INSERT INTO calls ({_TARGET}) "
    f"SELECT {_SQLITE_VALUES}, '{_DIRECTION}', "
    f"{_TENANT.format(_SQLITE_DIALLED)} "
    "FROM json_each(?) AS j WHERE true ORDER BY j.key "
    "ON CONFLICT (linkedid) DO NOTHING RETURNING linkedid, id"
)
# PostgreSQL: the same, the rows as one JSON parameter taken in array order.
_PG_TYPES = (
    "l varchar, cn varchar, cr varchar, nm varchar, ch varchar, dn varchar, "
    "sa timestamp, nd varchar"
)
INSERT_ARRIVALS_POSTGRESQL = (
    f"INSERT INTO calls ({_TARGET}) "
    f"SELECT e.l, e.cn, e.cr, e.nm, e.ch, e.dn, e.sa, e.nd, '{_DIRECTION}', "
    f"{_TENANT.format('e.dn')} "
    f"FROM ROWS FROM (json_to_recordset(%(rows)s::json) AS ({_PG_TYPES})) "
    "WITH ORDINALITY AS e ORDER BY e.ordinality "
    "ON CONFLICT (linkedid) DO NOTHING RETURNING linkedid, id"
)
_PG_KEYS = ("l", "cn", "cr", "nm", "ch", "dn", "sa", "nd")


def insert_arrivals(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """INSERT .. ON CONFLICT (linkedid) DO NOTHING of new call rows (`ARRIVAL_COLUMNS`, values
    already cleaned and capped, one per linkedid) in one statement; the ids of those it
    created (the others had a row already)."""
    if not rows:
        return {}
    table: Table = Call.__table__  # type: ignore[assignment]
    connection = session.connection()
    dialect = connection.dialect
    # As the ORM stores it: the column's own bind processors (naive UTC; SQLite's text form).
    at_bind = table.c.started_at.type.dialect_impl(dialect).bind_processor(dialect)

    def started(value: datetime) -> Any:
        return at_bind(value) if at_bind else value

    if dialect.name == "sqlite":
        document = [
            [row[name] if name != "started_at" else started(row[name]) for name in ARRIVAL_COLUMNS]
            for row in rows
        ]
        result = connection.exec_driver_sql(INSERT_ARRIVALS_SQLITE, (json_text.dumps(document),))
    elif dialect.name == "postgresql":
        records = []
        for row in rows:
            record = {key: row[name] for key, name in zip(_PG_KEYS, ARRIVAL_COLUMNS, strict=True)}
            record["sa"] = _iso(started(row["started_at"]))
            records.append(record)
        result = connection.exec_driver_sql(
            INSERT_ARRIVALS_POSTGRESQL, {"rows": json_text.dumps(records)}
        )
    else:
        raise NotImplementedError(f"call log needs PostgreSQL or SQLite, not {dialect.name}")
    return {linkedid: call_id for linkedid, call_id in result}


# A menu result's call columns: the latest menu pass wins; the queue column only while the
# caller has not joined a queue yet (then the queue path owns it).
_MENU_SET = (
    "menu_choice = {c}, intent = {i}, language = {g}, menu_ended_at = {a}, "
    "queue = CASE WHEN {t}queue_joined_at IS NULL THEN {q} ELSE {t}queue END"
)
# SQLite: one prepared UPDATE run for every result in order (sqlite3's executemany, in C).
MENU_RESULTS_SQLITE = (
    "UPDATE calls SET "
    + _MENU_SET.format(c="?", i="?", g="?", a="?", t="", q="?")
    + " WHERE linkedid = ?"
)
# PostgreSQL: one UPDATE .. FROM the burst's results as one JSON parameter (each call's
# latest only: an UPDATE .. FROM takes one source row per target row).
MENU_RESULTS_POSTGRESQL = (
    "UPDATE calls AS c SET "
    + _MENU_SET.format(c="m.c", i="m.i", g="m.g", a="m.a", t="c.", q="m.q")
    + " FROM json_to_recordset(%(rows)s::json) AS m(l varchar, c varchar, i varchar, "
    "g varchar, a timestamp, q varchar) WHERE c.linkedid = m.l"
)


def update_menu_results(session: Session, results: list[MenuResult], now: datetime) -> None:
    """The call columns of many menu results, in order (the latest pass wins); a result's
    time defaults to `now`. Calls without a row are not created here."""
    if not results:
        return
    table: Table = Call.__table__  # type: ignore[assignment]
    connection = session.connection()
    dialect = connection.dialect
    at_bind = table.c.menu_ended_at.type.dialect_impl(dialect).bind_processor(dialect)
    rows = [
        (
            cap(result.choice, 32),
            cap(result.intent, 32),
            cap(result.language, 8),
            at_bind(result.at or now) if at_bind else result.at or now,
            cap(result.queue, 32),
            cap(result.linkedid, 64),
        )
        for result in results
    ]
    if dialect.name == "sqlite":
        connection.exec_driver_sql(MENU_RESULTS_SQLITE, rows)
    elif dialect.name == "postgresql":
        latest = {
            lid: {"l": lid, "c": c, "i": i, "g": g, "a": _iso(a), "q": q}
            for c, i, g, a, q, lid in rows
        }
        connection.exec_driver_sql(
            MENU_RESULTS_POSTGRESQL, {"rows": json_text.dumps(list(latest.values()))}
        )
    else:
        raise NotImplementedError(f"call log needs PostgreSQL or SQLite, not {dialect.name}")


def _iso(value: Any) -> Any:
    """A naive UTC datetime as PostgreSQL reads a timestamp from JSON."""
    return value.isoformat(sep=" ") if isinstance(value, datetime) else value
