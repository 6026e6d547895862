"""Meter readings submitted by phone, with history (the meter-readings flow).

Shares `Base` with call_router/models.py, so its tables are on the same metadata/migrations.
Payer accounts and their meters come from the billing system (`hotline meters import`,
call_router/payer_accounts.py): once any are imported, a payer code must be one of them.
Rows are never overwritten: a correction adds a row and marks the old one `corrected`, a
deletion marks it `deleted`, so the history shows what the payer said and when.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from call_router.models import Base, UTCDateTime, utcnow

READING_ACTIVE = "active"
READING_CORRECTED = "corrected"
READING_DELETED = "deleted"


class MeterReading(Base):
    __tablename__ = "meter_readings"
    __table_args__ = (Index("ix_meter_readings_payer_meter", "payer_code", "meter", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payer_code: Mapped[str] = mapped_column(String(32))
    meter: Mapped[str] = mapped_column(String(16))  # cold_water, hot_water, heat
    value: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default=READING_ACTIVE, index=True)
    source: Mapped[str] = mapped_column(String(16), default="phone")  # phone, cli
    # The number that phoned it in (normalised): only it may correct or delete the reading.
    caller_number: Mapped[str | None] = mapped_column(String(32))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the row stopped being the current reading (corrected or deleted).
    changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replaced_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("meter_readings.id", ondelete="SET NULL")
    )


class PayerAccount(Base):
    """A payer account from the billing system's export: its code (as on the bill), address.

    `tenant_id`: the management company that imported it (NULL: the centre's)."""

    __tablename__ = "payer_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Unique across the centre: the caller keys it before the company is known.
    code: Mapped[str] = mapped_column(String(32), unique=True)
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    address: Mapped[str] = mapped_column(String(256), default="")
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayerMeter(Base):
    """A meter of a payer account, with the last reading billing knows (the baseline a phoned
    reading is checked against when it is newer than the last one phoned in)."""

    __tablename__ = "payer_meters"
    __table_args__ = (UniqueConstraint("account_id", "meter", name="uq_payer_meters_meter"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account_id: Mapped[int] = mapped_column(
        ForeignKey("payer_accounts.id", ondelete="CASCADE"), index=True
    )
    # The account's (kept here too, so the tenant wall filters meters on their own).
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    meter: Mapped[str] = mapped_column(String(16))  # cold_water, hot_water, heat
    serial: Mapped[str | None] = mapped_column(String(32))
    last_value: Mapped[int | None] = mapped_column(BigInteger)
    last_read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
