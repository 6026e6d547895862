"""Banned SIP source addresses (call_router/sip_bans.py). Rows are kept after a ban ends or is
lifted: the history shows who was banned, why, and who lifted it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from call_router.models import Base, UTCDateTime, utcnow


class SipBan(Base):
    __tablename__ = "sip_bans"
    __table_args__ = (Index("ix_sip_bans_address_expires", "address", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    address: Mapped[str] = mapped_column(String(45))  # one IPv4 or IPv6 address
    reason: Mapped[str] = mapped_column(String(64))  # the security event that banned it
    failures: Mapped[int] = mapped_column(Integer)  # within the window
    banned_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    lifted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lifted_by: Mapped[str | None] = mapped_column(String(64))
