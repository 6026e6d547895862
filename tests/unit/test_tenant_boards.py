"""A tenant's own service-level target: the bounds a person may set, and which target a scope
is measured against (a tenant's own, else the centre's; the centre and the roll-up keep the
centre's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from call_router import tenant_wall, tenants
from call_router.db import Database
from call_router.tenant_boards import (
    ServiceLevel,
    check_target,
    service_level_of,
    set_service_level,
)
from call_router.tenants import TenantError

CENTRE = ServiceLevel(20, 0.8)


@pytest.mark.parametrize(
    ("seconds", "target"),
    [(0, None), (-5, None), (3601, None), (None, 0.0), (None, 1.01), (None, float("nan"))],
)
def test_a_target_out_of_bounds_is_refused(seconds: int | None, target: float | None) -> None:
    with pytest.raises(TenantError):
        check_target(seconds, target)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'calls.db'}")
    database.upgrade()
    yield database
    database.dispose()


def test_each_scope_is_measured_against_its_own_target(db: Database) -> None:
    with db.session() as session:
        a = tenants.add_tenant(session, "Dom A", slug="dom-a").id
        b = tenants.add_tenant(session, "Dom B", slug="dom-b").id
        set_service_level(session, "dom-a", 45, 0.95)
        set_service_level(session, "dom-b", None, 0.9)  # its own share, the centre's seconds
    with db.session() as session:
        assert service_level_of(session, tenant_wall.Scope(tenant=a), CENTRE) == ServiceLevel(
            45, 0.95
        )
        assert service_level_of(session, tenant_wall.Scope(tenant=b), CENTRE) == ServiceLevel(
            20, 0.9
        )
        for scope in (tenant_wall.EVERYTHING, tenant_wall.CENTRE_ONLY, tenant_wall.NOTHING):
            assert service_level_of(session, scope, CENTRE) == CENTRE
