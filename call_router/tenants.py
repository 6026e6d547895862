"""Tenants: the management companies the contact centre serves by contract, the numbers
residents dial (each the centre's or one tenant's), and the tenants' own specialist queues.

Who sees which rows - the wall - is call_router/tenant_wall.py (imported here, so whoever
works with tenants has it installed).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.models import utcnow
from call_router.tenant_models import DialledNumber, Tenant, TenantQueue
from call_router.tenant_routing import SERVICES, tenant_queue_name
from call_router.tenant_wall import CENTRE

SLUG_RE: Final = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


class TenantError(ValueError):
    """Bad input for a tenant operation; the message is safe to show."""


# --- tenants ----------------------------------------------------------------------------------


def check_slug(slug: str) -> str:
    if not SLUG_RE.match(slug) or slug == CENTRE:
        raise TenantError(
            "slug: 1-32 of lowercase letters, digits and '-', starting with a letter or digit"
            f" (and not {CENTRE!r})"
        )
    return slug


def slug_from_name(name: str) -> str:
    """A slug made from a Latin-letter name (`Dom Service` -> `dom-service`); '' if none."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:32].strip("-")


def add_tenant(
    session: Session, name: str, *, slug: str | None = None, now: datetime | None = None
) -> Tenant:
    name = name.strip()
    if not name or len(name) > 128:
        raise TenantError("name: 1-128 characters")
    chosen = check_slug(slug if slug is not None else slug_from_name(name) or "x")
    if slug is None and not slug_from_name(name):
        raise TenantError("the name has no Latin letters or digits: give --slug")
    if get_tenant(session, chosen) is not None:
        raise TenantError(f"tenant {chosen!r} already exists")
    tenant = Tenant(slug=chosen, name=name, created_at=now or utcnow())
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(session: Session, slug: str) -> Tenant | None:
    return session.scalar(select(Tenant).where(Tenant.slug == slug))


def require_tenant(session: Session, slug: str) -> Tenant:
    tenant = get_tenant(session, slug)
    if tenant is None:
        raise TenantError(f"no tenant {slug!r}")
    return tenant


def list_tenants(session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.slug)))


def slugs(session: Session) -> dict[int, str]:
    # Not dict(result): a Result has .keys(), so dict() would read it as a mapping.
    return {tenant_id: slug for tenant_id, slug in session.execute(select(Tenant.id, Tenant.slug))}


# --- dialled numbers ----------------------------------------------------------------------


def clean_number(value: str) -> str:
    """A dialled number as the call log keeps it (call_log_sql.dialable: digits, + * #)."""
    number = "".join(ch for ch in value if ch.isascii() and (ch.isdigit() or ch in "+*#"))
    if not number or len(number) > 32:
        raise TenantError("number: 1-32 digits (+, * and # allowed)")
    return number


def add_number(
    session: Session, number: str, tenant_slug: str | None, *, now: datetime | None = None
) -> DialledNumber:
    """Point `number` at a tenant (or, `tenant_slug` None, at the centre); re-pointing an
    existing number moves it (calls already logged keep their tenant)."""
    clean = clean_number(number)
    tenant = require_tenant(session, tenant_slug) if tenant_slug is not None else None
    row = session.get(DialledNumber, clean)
    if row is None:
        row = DialledNumber(number=clean, created_at=now or utcnow())
        session.add(row)
    row.tenant_id = tenant.id if tenant is not None else None
    session.flush()
    return row


def list_numbers(session: Session) -> list[DialledNumber]:
    return list(session.scalars(select(DialledNumber).order_by(DialledNumber.number)))


def tenant_for_number(session: Session, dialled: str | None) -> int | None:
    """The tenant a call to `dialled` is for; None: the centre's (or an unknown number)."""
    if not dialled:
        return None
    return session.scalar(select(DialledNumber.tenant_id).where(DialledNumber.number == dialled))


def tenants_for_numbers(session: Session, dialled: set[str | None]) -> dict[str | None, int]:
    """`tenant_for_number` for many numbers in one query: the tenants' numbers only."""
    wanted = {number for number in dialled if number}
    if not wanted:
        return {}
    rows = session.execute(
        select(DialledNumber.number, DialledNumber.tenant_id).where(
            DialledNumber.number.in_(wanted), DialledNumber.tenant_id.is_not(None)
        )
    )
    return {number: tenant for number, tenant in rows if tenant is not None}


def number_owners(session: Session) -> dict[str, int | None]:
    """Every registered number: its tenant's id, or None for the centre's."""
    rows = session.execute(select(DialledNumber.number, DialledNumber.tenant_id))
    return {number: tenant for number, tenant in rows}


# --- tenants' own queues -------------------------------------------------------------------


def parse_services(spec: str) -> list[str]:
    """`plumbing,heating` → the services; '' → none."""
    services: list[str] = []
    for item in (part.strip().lower() for part in spec.split(",")):
        if not item:
            continue
        if item not in SERVICES:
            raise TenantError(
                f"no service {item!r}; a tenant may have its own: {', '.join(SERVICES)}"
                " (coordinator and duty are the centre's)"
            )
        if item not in services:
            services.append(item)
    return services


def set_tenant_queues(session: Session, slug: str, services: list[str]) -> list[str]:
    """The tenant's own queues become exactly `services`; returns their queue names."""
    tenant = require_tenant(session, slug)
    current = {
        row.service: row
        for row in session.scalars(select(TenantQueue).where(TenantQueue.tenant_id == tenant.id))
    }
    for service, row in current.items():
        if service not in services:
            session.delete(row)
    for service in services:
        if service not in current:
            session.add(TenantQueue(tenant_id=tenant.id, service=service))
    session.flush()
    return [tenant_queue_name(tenant.id, service) for service in services]


def own_services(session: Session) -> dict[int, frozenset[str]]:
    """Tenant id → the services it has its own queues for."""
    found: dict[int, set[str]] = {}
    for tenant_id, service in session.execute(select(TenantQueue.tenant_id, TenantQueue.service)):
        found.setdefault(tenant_id, set()).add(service)
    return {tenant_id: frozenset(services) for tenant_id, services in found.items()}


def tenant_queue_names(session: Session) -> list[str]:
    """Every tenant's own queue, for queues.conf and the dialplan."""
    rows = session.execute(
        select(TenantQueue.tenant_id, TenantQueue.service).order_by(
            TenantQueue.tenant_id, TenantQueue.service
        )
    )
    return [tenant_queue_name(tenant_id, service) for tenant_id, service in rows]
