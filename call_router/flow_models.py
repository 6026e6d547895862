"""Tables of the voice-menu flows: incidents announced to callers, callers' languages.

Imported by the migration environment through `Base` (same metadata as call_router.models).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from call_router.models import Base, UTCDateTime, utcnow


class Incident(Base):
    """A known outage (hot water off at Lenina 5 until 18:00) that callers hear first.

    `areas` empty means the whole city; otherwise a caller matches when the flow knows their
    area (the `area` call variable) and it is listed. `message` is per language;
    call_router.incidents.speak turns it into recordings/prompts/<lang>/incident_<id>.wav
    when the incident is created (CLI or dashboard).
    """

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    areas: Mapped[list[str]] = mapped_column(JSON, default=list)
    message: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expected_end: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)

    def matches(self, area: str | None) -> bool:
        if not self.areas:
            return True
        return area is not None and area.strip().lower() in {a.lower() for a in self.areas}


class CallerLanguage(Base):
    """The prompt language a caller chose, remembered for their next calls."""

    __tablename__ = "caller_languages"

    caller_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
