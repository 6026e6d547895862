"""Migrations 0014-0015 move a populated single-company database into one tenant, `default`,
without losing a row - on SQLite and PostgreSQL, starting from a real database at 0013 filled
with plain SQL (the models already have the new columns, so they cannot write at 0013)."""

from __future__ import annotations

from datetime import UTC, datetime

from alembic import command
from sqlalchemy import inspect, text

from call_router.call_log import CallLog
from call_router.db import Database, alembic_config, upgrade

NOW = datetime(2026, 11, 20, 9, 0)  # naive UTC, as the call log stores it
OWNED = ("calls", "callbacks", "operators")
CENTRE_WIDE = ("dashboard_users", "api_tokens")


def _fill_at_0013(db: Database) -> None:
    """A single-company hotline: roster, calls (one of them our own click-to-call, which keeps
    the resident's number as the dialled number), timelines, callbacks, accounts, a token."""
    statements = [
        "INSERT INTO operators (id, name, sip_login, sip_password, language, enabled, created_at)"
        " VALUES (1, 'Anna', 'anna', 'secret-secret-1', 'ru', true, :now),"
        " (2, 'Boris', 'boris', 'secret-secret-2', 'ru', true, :now)",
        "INSERT INTO operator_skills (operator_id, queue, penalty) VALUES (1, 'plumbing', 0),"
        " (2, 'lift', 1)",
        "INSERT INTO calls (id, linkedid, caller_number, dialed_number, started_at, queue,"
        " operator, outcome) VALUES"
        " (1, 'in-1', '79140000001', '500100', :now, 'plumbing', 'Anna', 'completed'),"
        " (2, 'in-2', '79140000002', '500106', :now, NULL, NULL, 'meter_reading'),"
        " (3, 'out-1', '79140000001', '79140000001', :now, NULL, 'Anna', 'completed'),"
        " (4, 'in-3', 'anonymous', NULL, :now, 'lift', NULL, 'abandoned_in_queue')",
        "INSERT INTO call_events (call_id, at, kind, key, data) VALUES"
        " (1, :now, 'joined', 'j1', '{}'), (1, :now, 'hangup', 'h1', '{}'),"
        " (3, :now, 'callback_call', 'cb1', '{}')",
        "INSERT INTO callbacks (id, caller_number, status, reason, attempts, created_at,"
        " updated_at, priority, tries, last_call_id) VALUES"
        " (1, '79140000001', 'closed', 'abandoned_in_queue', 1, :now, :now, 0, 1, 1),"
        " (2, '79140000002', 'open', 'voicemail', 2, :now, :now, 5, 0, 2)",
        "INSERT INTO callback_attempts (callback_id, at, action, data) VALUES"
        " (1, :now, 'created', '{}'), (1, :now, 'closed', '{}'), (2, :now, 'created', '{}')",
        "INSERT INTO dashboard_users (id, username, password_hash, role, operator_id, active,"
        " created_at) VALUES (1, 'admin', 'h', 'supervisor', NULL, true, :now),"
        " (2, 'anna', 'h', 'operator', 1, true, :now)",
        "INSERT INTO api_tokens (name, token_hash, prefix, role, created_at)"
        " VALUES ('wallboard', 'digest', 'hlt_abc', 'supervisor', :now)",
    ]
    with db.engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement), {"now": NOW})
        if conn.dialect.name == "postgresql":  # explicit ids above: move the sequences on
            for table in ("operators", "calls", "callbacks", "dashboard_users"):
                conn.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), 100)"))


def _counts(db: Database, tables: list[str]) -> dict[str, int]:
    with db.engine.connect() as conn:
        return {
            t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar_one()) for t in tables
        }


def _rows(db: Database, sql: str) -> list[tuple[object, ...]]:
    with db.engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(sql))]


def test_a_populated_installation_moves_into_one_default_tenant(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        upgrade(empty_url, "0013")
        _fill_at_0013(db)
        tables = sorted(t for t in inspect(db.engine).get_table_names() if t != "alembic_version")
        before = _counts(db, tables)
        snapshot = _rows(db, "SELECT id, linkedid, caller_number, outcome FROM calls ORDER BY id")

        db.upgrade()

        # Every row of every table is still there, unchanged.
        assert _counts(db, tables) == before
        assert (
            _rows(db, "SELECT id, linkedid, caller_number, outcome FROM calls ORDER BY id")
            == snapshot
        )
        assert _rows(db, "SELECT id, slug, name FROM tenants") == [
            (1, "default", "Default company")
        ]
        for table in OWNED:
            assert {t for (t,) in _rows(db, f"SELECT tenant_id FROM {table}")} == {1}, table
        # The people who ran the hotline keep seeing everything: accounts stay centre-wide.
        for table in CENTRE_WIDE:
            assert {t for (t,) in _rows(db, f"SELECT tenant_id FROM {table}")} == {None}, table
        # The numbers residents dialled are the tenant's; the resident's own number that our
        # click-to-call kept as "dialled" is not.
        assert _rows(db, "SELECT number, tenant_id FROM dialled_numbers ORDER BY number") == [
            ("500100", 1),
            ("500106", 1),
        ]

        # A new call on the same number lands in the same tenant; another number is the centre's.
        log = CallLog(db)
        new = log.ensure_call(
            "in-4", caller_number="79140000009", caller_name=None, dialed_number="500100"
        )
        other = log.ensure_call(
            "in-5", caller_number="79140000009", caller_name=None, dialed_number="8800"
        )
        assert _rows(
            db, f"SELECT tenant_id FROM calls WHERE id IN ({new}, {other}) ORDER BY id"
        ) == [
            (1,),
            (None,),
        ]

        # Downgrade gives everything back to the single company, still without a loss.
        command.downgrade(alembic_config(empty_url), "0013")
        after_down = _counts(db, tables)
        assert {t: n for t, n in after_down.items() if t != "calls"} == {
            t: n for t, n in before.items() if t != "calls"
        }
        assert after_down["calls"] == before["calls"] + 2
        assert "tenant_id" not in {c["name"] for c in inspect(db.engine).get_columns("calls")}
        db.upgrade()
    finally:
        db.dispose()


def test_a_new_installation_has_no_tenant(empty_url: str) -> None:
    db = Database(empty_url)
    try:
        db.upgrade()
        assert _rows(db, "SELECT * FROM tenants") == []
        assert _rows(db, "SELECT * FROM dialled_numbers") == []
    finally:
        db.dispose()


def test_calls_take_the_tenant_of_the_dialled_number(empty_url: str) -> None:
    """The router and the FastAGI writer (one call and a burst) both set the call's tenant
    from its dialled number; a callback opened for the call belongs to the same tenant."""
    from call_router import callback_intake, tenants
    from call_router.call_log_core import CallArrival
    from call_router.models import Call, Callback

    db = Database(empty_url)
    try:
        db.upgrade()
        with db.session() as session:
            tenants.add_tenant(session, "Dom A", slug="dom-a")
            tenants.add_number(session, "5-100", "dom-a")
            tenants.add_number(session, "500100", None)
        log = CallLog(db)
        a = log.ensure_call(
            "a", caller_number="79140000001", caller_name=None, dialed_number="5100"
        )
        centre = log.ensure_call(
            "c", caller_number="79140000002", caller_name=None, dialed_number="500100"
        )
        burst = log.ensure_calls(
            [
                CallArrival("b1", "79140000003", None, None, "5100", datetime.now(UTC)),
                CallArrival("b2", "79140000004", None, None, "123", datetime.now(UTC)),
            ]
        )
        with db.session() as session:
            tenant_of: dict[str, int | None] = dict(
                session.execute(session.query(Call.linkedid, Call.tenant_id).statement).all()
            )
            entry = callback_intake.open_or_attach(
                session,
                caller_number="79140000001",
                reason="abandoned_in_queue",
                queue="plumbing",
                call_id=a,
                now=datetime.now(UTC),
            )
            assert entry is not None
            entry_id = entry.id
        dom_a = 1
        assert tenant_of == {"a": dom_a, "c": None, "b1": dom_a, "b2": None}
        assert centre and burst
        with db.session() as session:
            stored = session.get(Callback, entry_id)
            assert stored is not None and stored.tenant_id == dom_a
    finally:
        db.dispose()
