"""Tenant routing in the store: migration 0016 (SQLite and PostgreSQL, up and down, on a
populated database), and the menu's decision written over the dialled number's tenant."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, text

from call_router import buildings, tenants
from call_router.call_log import CallLog
from call_router.db import Database, alembic_config, upgrade
from tests.integration.test_tenant_migration import _counts, _fill_at_0013, _rows

NEW_TABLES = {"tenant_queues", "buildings", "resident_phones"}


def _triggers(db: Database) -> set[str]:
    if db.engine.dialect.name != "sqlite":
        return set()
    return {name for (name,) in _rows(db, "SELECT name FROM sqlite_master WHERE type='trigger'")}


def test_migration_0016_keeps_every_row_up_and_down(empty_url: str) -> None:  # noqa: F811
    db = Database(empty_url)
    try:
        upgrade(empty_url, "0013")
        _fill_at_0013(db)
        upgrade(empty_url, "0015")
        tables = sorted(t for t in inspect(db.engine).get_table_names() if t != "alembic_version")
        before = _counts(db, tables)
        calls = _rows(db, "SELECT id, linkedid, tenant_id, dialed_number FROM calls ORDER BY id")
        triggers = _triggers(db)

        upgrade(empty_url, "0016")
        assert set(inspect(db.engine).get_table_names()) >= NEW_TABLES
        assert _counts(db, tables) == before
        assert (
            _rows(db, "SELECT id, linkedid, tenant_id, dialed_number FROM calls ORDER BY id")
            == calls
        )
        # Logged before: their tenant came from the number; nothing else is claimed.
        assert {row for row in _rows(db, "SELECT tenant_source, building_id FROM calls")} == {
            (None, None)
        }
        assert _triggers(db) == triggers  # the report roll-up triggers of 0009 survive

        # The ORM below speaks the newest schema: write through it there, then come back down.
        upgrade(empty_url, "head")
        with db.session() as session:
            tenants.set_tenant_queues(session, "default", ["plumbing"])
            rows = buildings.parse_csv(b"Lenina,5,11\n")
            building = buildings.import_buildings(session, "default", rows).buildings[0].id
            buildings.register_phone(session, "+79140000001", building, "RU")
        CallLog(db).record_tenant("in-1", tenant_id=1, source="keypad", building_id=building)

        command.downgrade(alembic_config(empty_url), "0015")
        assert not NEW_TABLES & set(inspect(db.engine).get_table_names())
        columns = {c["name"] for c in inspect(db.engine).get_columns("calls")}
        assert not {"tenant_source", "building_id"} & columns
        assert _counts(db, tables) == {**before, "call_events": before["call_events"] + 1}
        assert (
            _rows(db, "SELECT id, linkedid, tenant_id, dialed_number FROM calls ORDER BY id")
            == calls
        )
        assert _triggers(db) == triggers
        db.upgrade()
    finally:
        db.dispose()


def test_the_menu_s_decision_overrides_the_number_s_tenant_and_the_router_keeps_it(
    empty_url: str,  # noqa: F811
) -> None:
    db = Database(empty_url)
    try:
        db.upgrade()
        with db.session() as session:
            tenants.add_tenant(session, "Dom B", slug="dom-b")
            tenants.add_number(session, "500200", None)
            b = tenants.require_tenant(session, "dom-b").id
        log = CallLog(db)
        # The FastAGI writer: the row (the centre's number), then the decision.
        log.ensure_call("x1", caller_number="79140000001", caller_name=None, dialed_number="500200")
        log.record_tenant("x1", tenant_id=b, source="phone", building_id=None)
        # The router's view of the same call arrives later: it must not undo the decision.
        log.ensure_call("x1", caller_number="79140000001", caller_name=None, dialed_number="500200")
        # Replayed (spool, retry): idempotent.
        log.record_tenant("x1", tenant_id=b, source="phone", building_id=None)
        assert _rows(db, "SELECT tenant_id, tenant_source FROM calls WHERE linkedid = 'x1'") == [
            (b, "phone")
        ]
        kinds = _rows(
            db,
            "SELECT e.kind FROM call_events e JOIN calls c ON c.id = e.call_id"
            " WHERE c.linkedid = 'x1'",
        )
        assert kinds == [("tenant",)]
        # A decision for a call the writer has not created yet creates it.
        log.record_tenant(
            "x2", tenant_id=None, source="unknown", at=datetime.now(UTC), building_id=None
        )
        assert _rows(db, "SELECT tenant_id, tenant_source FROM calls WHERE linkedid = 'x2'") == [
            (None, "unknown")
        ]
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM calls")).scalar_one() == 2
    finally:
        db.dispose()
