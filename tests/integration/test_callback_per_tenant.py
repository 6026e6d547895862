"""One open callback per (tenant, number) - migration 0017 - on SQLite and PostgreSQL.

A resident who missed tenant A's specialist and then tenant B's is owed a call back by each:
before 0017 B's miss was attached to A's entry (one open entry per number), so B's
supervisor never saw it and A's saw B's call. Misses with the same tenant still attach, the
centre keeps one open entry per number too, and reaching A's operator closes A's entry only.
The migration keeps every row both ways.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, select, text

from call_router import callback_claims, callback_intake, click_to_call, tenant_wall, tenants
from call_router.db import Database, alembic_config, upgrade
from call_router.models import CALLBACK_OPEN, Call, Callback, Operator
from tests.integration.test_callbacks_claim import RULES

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NUMBER = "+79140000077"


def _missed(db: Database, tenant_id: int | None, minutes: int) -> Callback:
    with db.session() as session:
        call = Call(
            linkedid=uuid.uuid4().hex,
            caller_number=NUMBER,
            started_at=NOW + timedelta(minutes=minutes),
            tenant_id=tenant_id,
        )
        session.add(call)
        session.flush()
        entry = callback_intake.open_or_attach(
            session,
            caller_number=NUMBER,
            reason="abandoned_in_queue",
            queue="plumbing",
            call_id=call.id,
            now=NOW + timedelta(minutes=minutes),
        )
        assert entry is not None
        session.expunge(entry)
        return entry


def _open(db: Database) -> dict[int | None, Callback]:
    with db.session() as session:
        rows = session.scalars(select(Callback).where(Callback.status == CALLBACK_OPEN)).all()
        session.expunge_all()
        return {row.tenant_id: row for row in rows}


def test_each_tenant_gets_its_own_open_entry_for_one_number(database: Database) -> None:
    with database.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
    first_a = _missed(database, a, 0)
    first_b = _missed(database, b, 1)
    assert first_b.id != first_a.id
    again_a = _missed(database, a, 2)
    assert again_a.id == first_a.id  # the same tenant's miss attaches
    centre = _missed(database, None, 3)
    assert _missed(database, None, 4).id == centre.id  # and the centre's too
    entries = _open(database)
    assert set(entries) == {a, b, None}
    assert entries[a].attempts == 2 and entries[b].attempts == 1 and entries[None].attempts == 2

    # Reaching A's operator settles A's entry; B still owes the resident a call.
    with database.session() as session:
        closed = callback_intake.close_for_number(
            session, NUMBER, "reached_operator", NOW + timedelta(minutes=5), tenant_id=a
        )
    assert closed == 1
    assert set(_open(database)) == {b, None}


INSERT = (
    "INSERT INTO callbacks (caller_number, status, reason, attempts, created_at, updated_at,"
    " priority, tries, tenant_id) VALUES (:number, :status, 'voicemail', 1, :now, :now, 0, 0,"
    " :tenant)"
)


def test_the_migration_keeps_every_row_both_ways(empty_url: str) -> None:
    config = alembic_config(empty_url)
    command.upgrade(config, "0015")
    engine = create_engine(empty_url)
    now = datetime(2026, 12, 1, 9, 0)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO tenants (id, slug, name, created_at) VALUES"
                    " (1, 'dom-a', 'A', :now), (2, 'dom-b', 'B', :now)"
                ),
                {"now": now},
            )
            for number, status, tenant in (
                ("79140000001", "open", 1),
                ("79140000001", "closed", 2),
                ("79140000002", "open", None),
            ):
                conn.execute(
                    text(INSERT), {"number": number, "status": status, "now": now, "tenant": tenant}
                )
        upgrade(empty_url)
        with engine.begin() as conn:
            before = conn.execute(text("SELECT id, status FROM callbacks ORDER BY id")).all()
            assert before == [(1, "open"), (2, "closed"), (3, "open")]
            # Now a second tenant may hold an open entry for the same number...
            conn.execute(
                text(INSERT), {"number": "79140000001", "status": "open", "now": now, "tenant": 2}
            )
        # ...but the centre still has one open entry per number.
        with pytest.raises(Exception, match="(?i)unique"), engine.begin() as conn:
            conn.execute(
                text(INSERT),
                {"number": "79140000002", "status": "open", "now": now, "tenant": None},
            )
        command.downgrade(config, "0015")
        with engine.begin() as conn:
            rows = conn.execute(
                text("SELECT id, status, tenant_id FROM callbacks ORDER BY id")
            ).all()
        # Every row kept; of the number's two open entries the newest stays open.
        assert [(row[0], row[1]) for row in rows] == [
            (1, "closed"),
            (2, "closed"),
            (3, "open"),
            (4, "open"),
        ]
        upgrade(empty_url)
        with engine.begin() as conn:
            count = conn.execute(text("SELECT count(*) FROM callbacks")).scalar()
        assert count == 4
    finally:
        engine.dispose()


def test_a_tenants_call_back_is_that_tenants_call(database: Database) -> None:
    # Found by a tenant review (2026-12-06): the call an operator (or virtual hold) placed to a
    # tenant's resident was logged as the centre's: hidden from the tenant's own staff (its
    # operator could not file the disposition), counted in the centre's figures.
    with database.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        session.add(Operator(name="Anna", sip_login="1001", sip_password="x" * 16, tenant_id=a))
    entry = _missed(database, a, 0)
    assert entry.tenant_id == a
    with database.session() as session:
        callback_claims.claim(session, entry.id, "1001", NOW, timeout=600)
    tenant_wall.enter(tenant_wall.tenant_scope(a))  # as A's operator on the dashboard
    try:
        placed = click_to_call.prepare(database, entry.id, "1001", rules=RULES, now=NOW)
        with database.session() as session:
            seen = session.scalar(select(Call).where(Call.id == placed.call_id))
            assert seen is not None, "A's call-back is not behind A's wall"
            assert seen.tenant_id == a
    finally:
        tenant_wall.enter(tenant_wall.EVERYTHING)
