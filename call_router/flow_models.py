"""Tables of the voice-menu flows: incidents announced to callers, callers' languages.

Imported by the migration environment through `Base` (same metadata as call_router.models).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from call_router.areas_match import covers
from call_router.models import Base, UTCDateTime, utcnow


class Incident(Base):
    """A known outage (hot water off at Lenina 5 until 18:00) that callers hear first.

    `areas` empty means the whole city; otherwise a caller matches when the flow knows their
    area (the `area` call variable, set by the flow's `area` node) and it is one of them or
    inside one (call_router/areas_match.py). `message` is per language;
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
        """Heard by a caller from `area`: a city-wide one by everyone, else by callers from one
        of its areas or from inside one (a district's by its streets and houses)."""
        if not self.areas:
            return True
        return area is not None and any(covers(a, area) for a in self.areas)


class CallerLanguage(Base):
    """The prompt language a caller chose, remembered for their next calls."""

    __tablename__ = "caller_languages"

    caller_number: Mapped[str] = mapped_column(String(32), primary_key=True)
    language: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class Area(Base):
    """A node of the service area: city → district → street → house (call_router/areas.py).

    `path` is the node's key, its ancestors' keys and its own joined by `/`
    (`irkutsk/oktyabrsky/lenina/14`): a node's descendants are the paths that start with it
    and a `/`. `code` is what a caller keys to say where they are (a district's, usually).
    """

    __tablename__ = "areas"

    path: Mapped[str] = mapped_column(String(400), primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    level: Mapped[int] = mapped_column(Integer)
    code: Mapped[str | None] = mapped_column(String(8), unique=True, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
