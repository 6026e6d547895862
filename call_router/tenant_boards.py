"""What a tenant's wallboard and reports measure against and show: its own service-level
target (else the centre's) and its own queues (`t<id>_<service>`), labelled for people.

Read through the ORM, so the tenant wall (call_router/tenant_wall.py) decides which tenants' own
queues a session sees: a tenant's board lists its own only, the centre's staff every tenant's
(narrowed by `?tenant=`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.tenant_models import Tenant, TenantQueue
from call_router.tenant_routing import tenant_queue_name
from call_router.tenant_wall import Scope
from call_router.tenants import TenantError, require_tenant

# Bounds of a target a person may set (the same as the centre's settings allow in practice).
MAX_SECONDS = 3600


@dataclass(frozen=True)
class ServiceLevel:
    """Calls answered within `seconds`, for at least `target` (0..1) of them."""

    seconds: int
    target: float


@dataclass(frozen=True)
class QueueLabel:
    """A tenant's own queue as people read it: "Dom Service · plumbing"."""

    queue: str
    tenant: str  # slug
    tenant_name: str
    service: str

    @property
    def label(self) -> str:
        return f"{self.tenant_name} · {self.service}"


def service_level_of(session: Session, scope: Scope, centre: ServiceLevel) -> ServiceLevel:
    """The target `scope`'s figures are measured against: one tenant's own where it set one,
    else the centre's. The centre's own rows and the roll-up of every tenant keep the
    centre's."""
    if scope.tenant is None:
        return centre
    tenant = session.get(Tenant, scope.tenant)
    if tenant is None:
        return centre
    return ServiceLevel(
        tenant.service_level_seconds or centre.seconds,
        tenant.service_level_target if tenant.service_level_target is not None else centre.target,
    )


def check_target(seconds: int | None, target: float | None) -> None:
    if seconds is not None and not 1 <= seconds <= MAX_SECONDS:
        raise TenantError(f"seconds: 1-{MAX_SECONDS}")
    if target is not None and not (math.isfinite(target) and 0 < target <= 1):
        raise TenantError("target: a share of calls above 0 and at most 1, e.g. 0.9")


def set_service_level(
    session: Session, slug: str, seconds: int | None, target: float | None
) -> Tenant:
    """The tenant's own target; None in either part: the centre's for that part."""
    check_target(seconds, target)
    tenant = require_tenant(session, slug)
    tenant.service_level_seconds = seconds
    tenant.service_level_target = target
    session.flush()
    return tenant


def own_queue_labels(session: Session) -> list[QueueLabel]:
    """The tenants' own queues this session may see (the wall filters `tenant_queues`), by
    tenant then service."""
    rows = session.execute(
        select(TenantQueue.tenant_id, TenantQueue.service, Tenant.slug, Tenant.name)
        .join(Tenant, Tenant.id == TenantQueue.tenant_id)
        .order_by(Tenant.slug, TenantQueue.service)
    )
    return [
        QueueLabel(tenant_queue_name(tenant_id, service), slug, name, service)
        for tenant_id, service, slug, name in rows
    ]
