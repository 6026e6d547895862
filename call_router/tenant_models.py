"""Tenants (management companies served by the contact centre) and the numbers residents dial.

A row whose `tenant_id` is NULL belongs to the centre itself. The rules (who sees which rows)
are in call_router/tenants.py.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
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


class DialledNumber(Base):
    """A number residents dial (a DID): the centre's (tenant_id NULL) or one tenant's.

    `number` is spelled as the call log keeps `calls.dialed_number` (digits, + * #)."""

    __tablename__ = "dialled_numbers"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
