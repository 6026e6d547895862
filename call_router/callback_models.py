"""The history of each callback entry: every miss, claim, call and outcome, in order.

Kept apart from call_router/models.py so the callback feature owns its table; it shares the
same `Base` (and so the same metadata and migrations).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from call_router.models import Base, UTCDateTime, utcnow

# Actions in the history (stable strings: the API shows them).
ACTION_CREATED = "created"
ACTION_ATTACHED = "attached"  # the same number missed us again
ACTION_CLAIMED = "claimed"
ACTION_RELEASED = "released"
ACTION_CALL_STARTED = "call_started"
ACTION_CALL_ENDED = "call_ended"  # what the dialler saw (answered, no answer, busy …)
ACTION_OUTCOME = "outcome"  # what the operator reported
ACTION_CLOSED = "closed"  # closed without an operator outcome (reached us, gave up)
ACTION_ESCALATED = "escalated"


class CallbackAttempt(Base):
    """One line of an entry's history."""

    __tablename__ = "callback_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    callback_id: Mapped[int] = mapped_column(
        ForeignKey("callbacks.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32))
    operator: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(String(32))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
