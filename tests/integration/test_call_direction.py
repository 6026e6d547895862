"""Calls carry their direction (migration 0020): an operator's click-to-call is a `callback`,
not a call they answered. On SQLite and PostgreSQL: the migration labels existing rows (by the
`callback_call` event or the `cb-` linkedid) and keeps the report triggers; the per-operator
figures and `/api/calls?direction=` tell the two apart."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from alembic import command
from sqlalchemy import inspect, text

from call_router import call_sums
from call_router.db import Database, alembic_config, upgrade
from call_router.models import Call
from call_router.settings import Settings
from dashboard.main import create_app
from tests.conftest import bearer_headers

NOW = datetime(2026, 11, 20, 9, 0)  # naive UTC, as the call log stores it
T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def _rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def _triggers(db: Database) -> set[str]:
    if db.engine.dialect.name == "sqlite":
        sql = "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'calls'"
    else:
        sql = "SELECT tgname FROM pg_trigger WHERE tgrelid = 'calls'::regclass AND NOT tgisinternal"
    return {str(name) for (name,) in _rows(db, sql)}


def test_migration_labels_existing_calls_and_downgrades(empty_url: str) -> None:  # noqa: F811
    db = Database(empty_url)
    try:
        upgrade(empty_url, "0015")
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO calls (id, linkedid, caller_number, started_at, queue, operator,"
                    " answered_at, outcome) VALUES"
                    " (1, 'in-1', '79140000001', :now, 'plumbing', 'Anna', :now, 'answered'),"
                    " (2, 'cb-0a1b', '79140000001', :now, 'plumbing', 'Anna', :now, 'answered'),"
                    " (3, 'out-1', '79140000002', :now, NULL, 'Anna', :now, 'answered')"
                ),
                {"now": NOW},
            )
            conn.execute(
                text(
                    "INSERT INTO call_events (call_id, at, kind, key, data)"
                    " VALUES (3, :now, 'callback_call', 'cb3', '{}')"
                ),
                {"now": NOW},
            )
        triggers = _triggers(db)
        assert triggers  # the 0009 report triggers

        upgrade(empty_url, "0020")
        assert _rows(db, "SELECT id, direction FROM calls ORDER BY id") == [
            (1, "inbound"), (2, "callback"), (3, "callback"),
        ]  # fmt: skip
        assert _triggers(db) == triggers
        # A row written without a direction (an older writer) is inbound.
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO calls (id, linkedid, caller_number, started_at)"
                    " VALUES (4, 'in-2', '79140000003', :now)"
                ),
                {"now": NOW},
            )
        assert _rows(db, "SELECT direction FROM calls WHERE id = 4") == [("inbound",)]

        command.downgrade(alembic_config(empty_url), "0015")
        assert "direction" not in {c["name"] for c in inspect(db.engine).get_columns("calls")}
        assert _rows(db, "SELECT id FROM calls ORDER BY id") == [(1,), (2,), (3,), (4,)]
        assert _triggers(db) == triggers
        db.upgrade()
    finally:
        db.dispose()


def test_migration_0030_drops_quarter_hours_rolled_up_with_every_call(
    empty_url: str,  # noqa: F811
) -> None:
    # Rolled up before 0030, a quarter hour's figures counted a click-to-call as a call; the
    # reports now count callers only, so those rows must go (and be rolled up again).
    db = Database(empty_url)
    try:
        upgrade(empty_url, "0029")
        slot = int(T0.timestamp()) // 900
        with db.engine.begin() as conn:
            for table, values in (
                (
                    "report_slots (span, slot, calls, rolled_at, sl_threshold)",
                    "1, :slot, 2, :now, 20",
                ),
                ("report_slot_intents (span, slot, intent, calls)", "1, :slot, NULL, 2"),
            ):
                conn.execute(
                    text(f"INSERT INTO {table} VALUES ({values})"), {"slot": slot, "now": NOW}
                )
        upgrade(empty_url, "0030")
        assert _rows(db, "SELECT count(*) FROM report_slots") == [(0,)]
        assert _rows(db, "SELECT count(*) FROM report_slot_intents") == [(0,)]
        command.downgrade(alembic_config(empty_url), "0029")
        db.upgrade()
    finally:
        db.dispose()


def _add(db: Database, **fields: object) -> int:
    with db.session() as session:
        call = Call(linkedid=uuid.uuid4().hex, caller_number="+74951230000", **fields)
        session.add(call)
        session.flush()
        return call.id


async def test_click_to_call_is_not_an_answered_call(database: Database, tmp_path: Path) -> None:
    answered = _add(
        database, started_at=T0, queue="heating", queue_joined_at=T0, operator="Anna",
        answered_at=T0 + timedelta(seconds=5), ended_at=T0 + timedelta(seconds=65),
        talk_seconds=60, outcome="answered",
    )  # fmt: skip
    placed = _add(
        database, started_at=T0 + timedelta(minutes=1), queue="heating", operator="Anna",
        answered_at=T0 + timedelta(minutes=1, seconds=9),
        ended_at=T0 + timedelta(minutes=3), talk_seconds=111, outcome="answered",
        direction="callback",
    )  # fmt: skip
    with database.session() as session:
        figures = call_sums.operator_calls(session, T0, T0 + timedelta(hours=1))
    assert figures["Anna"].answered == 1 and figures["Anna"].talk_sum == 60

    app = create_app(
        Settings(state_dir=tmp_path / "state", country_code="RU"), database, zone=ZoneInfo("UTC")
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://dashboard.test",
        headers=bearer_headers(database),
    ) as http:
        every = (await http.get("/api/calls")).json()
        assert {c["id"]: c["direction"] for c in every} == {answered: "inbound", placed: "callback"}
        callbacks = (await http.get("/api/calls", params={"direction": "callback"})).json()
        assert [c["id"] for c in callbacks] == [placed]
        inbound = (await http.get("/api/calls", params={"direction": "inbound"})).json()
        assert [c["id"] for c in inbound] == [answered]
        wrong = await http.get("/api/calls", params={"direction": "sideways"})
        assert wrong.status_code == 422
        # The call log page and its CSV take the same filter.
        page = await http.get("/calls", params={"direction": "callback"})
        assert page.status_code == 200 and 'id="call-direction"' in page.text
        assert f'href="/calls/{placed}"' in page.text
        assert f'href="/calls/{answered}"' not in page.text
        exported = await http.get("/calls/export.csv", params={"direction": "inbound"})
        assert [row.split(",")[0] for row in exported.text.splitlines()[1:]] == [str(answered)]
