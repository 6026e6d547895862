"""Tenants (management companies served by the contact centre) and the numbers residents dial.

A row whose `tenant_id` is NULL belongs to the centre itself. The rules (who sees which rows)
are in call_router/tenant_wall.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from call_router.models import Base, UTCDateTime, utcnow


class Tenant(Base):
    """A management company or homeowners' association served by the centre."""

    __tablename__ = "tenants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Short, stable, URL- and CLI-safe name: `--tenant <slug>`, `?tenant=<slug>`.
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Its own service-level target (`hotline tenants sla`; migration 0021): answered within
    # this many seconds, for this share of calls. None: the centre's (HOTLINE_SERVICE_LEVEL_*).
    service_level_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    service_level_target: Mapped[float | None] = mapped_column(Float, nullable=True)


class DialledNumber(Base):
    """A number residents dial (a DID): the centre's (tenant_id NULL) or one tenant's.

    `number` is spelled as the call log keeps `calls.dialed_number` (digits, + * #)."""

    __tablename__ = "dialled_numbers"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TenantQueue(Base):
    """A specialist queue of the tenant's own (`t<tenant id>_<service>`,
    call_router/tenant_routing.py): its calls for that service go to its own specialists."""

    __tablename__ = "tenant_queues"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True
    )
    service: Mapped[str] = mapped_column(String(16), primary_key=True)


class Building(Base):
    """A building a tenant serves (`hotline buildings import FILE --tenant T`).

    `code`: the house code residents key in the menu (unique across the centre: the caller
    does not know the company yet); None: the building cannot be chosen by keypad."""

    __tablename__ = "buildings"
    __table_args__ = (
        UniqueConstraint("tenant_id", "street", "house", name="uq_buildings_address"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), index=True
    )
    street: Mapped[str] = mapped_column(String(128))
    house: Mapped[str] = mapped_column(String(16))
    code: Mapped[str | None] = mapped_column(String(8), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ResidentPhone(Base):
    """A resident's phone registered at a building: calls from it to the centre's numbers go
    to that building's tenant. `tenant_id` is the building's (kept here for the wall)."""

    __tablename__ = "resident_phones"

    phone: Mapped[str] = mapped_column(String(32), primary_key=True)
    building_id: Mapped[int] = mapped_column(
        ForeignKey("buildings.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
