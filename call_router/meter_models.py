"""Meter readings submitted by phone, with history (the meter-readings flow).

Shares `Base` with call_router/models.py, so its tables are on the same metadata/migrations.
Rows are never overwritten: a correction adds a row and marks the old one `corrected`, a
deletion marks it `deleted`, so the history shows what the payer said and when.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String
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
