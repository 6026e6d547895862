"""Agent state and the operator's disposition of a call (tables of migration 0003).

`agent_states` is the *desired* state of each operator (logged in to which queues, paused and
why). Asterisk keeps queue membership in memory only (persistentmembers = no), so the router
re-applies this table after every Asterisk restart or AMI reconnect: the database is the record,
Asterisk the executor. An operator with no row is logged in to all their skills (the roster's
default), so a freshly added operator answers calls without an extra step.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, backref, mapped_column, relationship

from call_router.models import Base, Call, UTCDateTime, utcnow


class AgentState(Base):
    __tablename__ = "agent_states"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sip_login: Mapped[str] = mapped_column(String(64), unique=True)
    logged_in: Mapped[bool] = mapped_column(Boolean, default=True)
    # The queues chosen at log-in; None = all of the operator's skills (follows roster edits).
    queues: Mapped[list[str] | None] = mapped_column(JSON, default=None)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    pause_reason: Mapped[str | None] = mapped_column(String(64))
    # When the current logged-in / paused state began (the wallboard's "since").
    since: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AgentStateLog(Base):
    """Every log-in, log-out, pause and unpause: the shift report's source."""

    __tablename__ = "agent_state_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sip_login: Mapped[str] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    # login / logout / pause / unpause
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    # who: "cli", "api", "auto" (the router's auto-pause)
    source: Mapped[str] = mapped_column(String(16))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CallDisposition(Base):
    """The operator's answer after a call: one per call, editable until a later issue locks it."""

    __tablename__ = "call_dispositions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    category: Mapped[str] = mapped_column(String(32), index=True)
    note: Mapped[str | None] = mapped_column(Text)
    callout_created: Mapped[bool] = mapped_column(Boolean, default=False)
    operator: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Who saved the current version (dashboard user, `token:<name>`); None before 0010.
    changed_by: Mapped[str | None] = mapped_column(String(80))

    # The backref gives every Call a `disposition` attribute (None until one is saved), so the
    # call detail API shows it without models.py knowing about this module.
    call: Mapped[Call] = relationship(
        backref=backref("disposition", uselist=False, cascade="all, delete-orphan")
    )


class CallDispositionChange(Base):
    """Every save of a call's disposition, as saved (migration 0010): who changed what, when.
    Rows are only ever added; the current version is also the newest row here."""

    __tablename__ = "call_disposition_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    category: Mapped[str] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(Text)
    callout_created: Mapped[bool] = mapped_column(Boolean, default=False)
    # On whose behalf (the roster login), and who did it (a supervisor acting for them).
    operator: Mapped[str | None] = mapped_column(String(64))
    changed_by: Mapped[str | None] = mapped_column(String(80))


class MissedRings(Base):
    """Consecutive rings a queue member did not answer (call_router/autopause.py), kept here
    rather than in the router's memory so a router restart does not forget them (migration
    0013). A row exists only while the count is above zero."""

    __tablename__ = "agent_missed_rings"

    interface: Mapped[str] = mapped_column(String(64), primary_key=True)  # e.g. PJSIP/1001
    missed: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
