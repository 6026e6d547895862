"""The supervisors' call-control audit (call_router/call_control/): one row per action asked
for - hang up, move, monitor, pause, unpause, log out - whether Asterisk did it or not."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from call_router.models import Base, UTCDateTime, utcnow


class ControlAction(Base):
    __tablename__ = "control_actions"
    __table_args__ = (Index("ix_control_actions_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who: a user name, `token:<name>` or `cli:<name>` (dashboard.deps.Actor.by).
    by: Mapped[str] = mapped_column(String(80))
    # hangup, move, monitor, pause, unpause, logout
    action: Mapped[str] = mapped_column(String(16))
    call_id: Mapped[int | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), nullable=True, index=True
    )
    operator: Mapped[str | None] = mapped_column(String(64))
    # What the action aimed at besides the call/operator: a queue, a monitor mode, a reason.
    target: Mapped[str | None] = mapped_column(String(64))
    # ok, refused (bad input, ended call: nothing was done), failed (Asterisk refused/away)
    result: Mapped[str] = mapped_column(String(16))
    detail: Mapped[str | None] = mapped_column(String(255))
    # The call's or operator's tenant (call_router/tenant_wall.py); NULL: the centre's.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )


class ControlClaim(Base):
    """A supervisor's move of a caller under way (migration 0025): one per call at a time."""

    __tablename__ = "control_claims"

    call_id: Mapped[int] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    # Whose claim it is: only its holder removes it.
    token: Mapped[str] = mapped_column(String(32))
    by: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
