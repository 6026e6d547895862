"""The call-control audit table on SQLite and PostgreSQL: its migration (0019) matches the
model and downgrades cleanly, rows are behind the tenant wall, and an action refused before
Asterisk is asked (unknown call, unknown queue or operator) is still audited."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from call_router import tenant_wall, tenants
from call_router.call_control import CallControl
from call_router.call_control.audit import audit_rows
from call_router.call_control.base import ControlError
from call_router.call_control.moving import CLAIM_STALE
from call_router.control_models import ControlAction, ControlClaim
from call_router.db import Database, alembic_config
from call_router.models import Base, Call
from call_router.settings import Settings


class NoAsterisk:
    """An AMI that must never be reached: these refusals happen before Asterisk is asked."""

    async def send(self, fields: Mapping[str, str], *, many: bool = False) -> list[dict[str, str]]:
        raise AssertionError(f"Asterisk asked {fields.get('Action')}")


def _control(db: Database, by: str = "boss") -> CallControl:
    return CallControl(Settings(), db, NoAsterisk(), by=by)


def test_the_audit_table_matches_its_migration_and_downgrades(database: Database) -> None:
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert not [d for d in diff if "control_" in repr(d)], diff
    config = alembic_config(database.url)
    command.downgrade(config, "0015")
    with database.engine.connect() as conn:
        assert "control_actions" not in conn.dialect.get_table_names(conn)
        assert "control_claims" not in conn.dialect.get_table_names(conn)
    command.upgrade(config, "head")
    with database.engine.connect() as conn:
        assert "control_actions" in conn.dialect.get_table_names(conn)
        assert "control_claims" in conn.dialect.get_table_names(conn)


def test_a_move_claims_the_call_once_and_a_crashed_claim_goes_stale(database: Database) -> None:
    with database.session() as session:
        call = Call(linkedid=uuid.uuid4().hex, caller_number="+74950000009")
        session.add(call)
        session.flush()
        call_id = call.id
    first, second = _control(database, "anna"), _control(database, "boris")
    assert first._claim(call_id, "a" * 32) is True
    assert second._claim(call_id, "b" * 32) is False  # anna's move is under way
    second._unclaim(call_id, "b" * 32)  # not boris's to remove
    assert second._claim(call_id, "b" * 32) is False
    first._unclaim(call_id, "a" * 32)
    assert second._claim(call_id, "b" * 32) is True
    # A claim left by a process that died is taken over once it is stale.
    with database.session() as session:
        claim = session.get(ControlClaim, call_id)
        assert claim is not None and claim.by == "boris"
        claim.at = datetime.now(UTC) - CLAIM_STALE - timedelta(seconds=1)
    assert first._claim(call_id, "c" * 32) is True


def test_refusals_are_audited_and_rows_stay_behind_the_tenant_wall(database: Database) -> None:
    with database.session() as session:
        a = tenants.add_tenant(session, "Alpha", now=datetime.now(UTC)).id
        b = tenants.add_tenant(session, "Beta", now=datetime.now(UTC)).id
        calls = {}
        for tenant in (a, b):
            call = Call(linkedid=uuid.uuid4().hex, caller_number="+74950000001", tenant_id=tenant)
            session.add(call)
            session.flush()
            calls[tenant] = call.id

    async def refused(work: object) -> ControlError:
        with pytest.raises(ControlError) as caught:
            await work  # type: ignore[misc]
        return caught.value

    control = _control(database)
    # A call that does not exist: 404, nothing asked of Asterisk, nothing audited (no call).
    missing = asyncio.run(refused(control.hangup(10**6)))
    assert (missing.status, missing.code) == (404, "not_found")
    unknown = asyncio.run(refused(control.move([calls[a]], queue="nowhere")))
    assert (unknown.status, unknown.code) == (404, "unknown_queue")
    nobody = asyncio.run(refused(control.move([calls[a]], operator="9999")))
    assert (nobody.status, nobody.code) == (404, "unknown_operator")
    with database.session() as session:
        rows = audit_rows(session)
    assert [(r.action, r.result, r.by) for r in rows] == [
        ("move", "refused", "boss"),
        ("move", "refused", "boss"),
    ]
    assert rows[1].target == "nowhere" and rows[0].operator == "9999"

    # Tenant rows: A's supervisor sees only A's; the centre sees all.
    with database.session() as session:
        for tenant in (a, b):
            session.add(
                ControlAction(
                    by="boss", action="hangup", call_id=calls[tenant], result="ok", tenant_id=tenant
                )
            )
    tenant_wall.enter(tenant_wall.tenant_scope(a))
    try:
        with database.session() as session:
            seen = audit_rows(session)
        # And a call of B is simply not there for A's supervisor (404, not 403).
        other = asyncio.run(refused(_control(database, "boss-a").hangup(calls[b])))
    finally:
        tenant_wall.enter(tenant_wall.EVERYTHING)
    assert [r.tenant_id for r in seen] == [a]
    assert (other.status, other.code) == (404, "not_found")
    with database.session() as session:
        assert {r.tenant_id for r in audit_rows(session)} == {None, a, b}
