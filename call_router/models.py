"""The call log schema (SQLAlchemy 2). Same schema on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from call_router.timeline_items import TimelineItem, timeline_items


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no time zone, PostgreSQL would convert."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the call log; use UTC-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return as_utc(value) if value is not None else None


def as_utc(at: datetime) -> datetime:
    """A time without a zone is UTC: what the call log stores (SQLite hands such times back),
    and what an ISO time without an offset means on our interfaces."""
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


class ClippedString(TypeDecorator[str]):
    """A string column keeping its first `length` characters, on write and in lookups alike:
    an identifier from outside that is longer than the column still finds its own row."""

    impl = String
    cache_ok = True

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.max_length = length

    def process_bind_param(self, value: str | None, dialect: Any) -> str | None:
        return value[: self.max_length] if value is not None else None


# The tables' ids are 32-bit INTEGERs: a larger number names no row (and PostgreSQL refuses
# to compare one with an id column, so it must never reach a query).
MAX_ROW_ID = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


# The call log's pages and reports (migrations 0008, 0032): newest first under one equality
# filter, so `(column, started_at, id)` per filter and `(started_at, id)` for none; each also
# serves a lookup by its first column alone, so no one-column index beside it (every index is
# written by every call: migration 0032). The wallboard's calls still open: a partial index.
CALL_LIST_FILTERS = ("caller_number", "queue", "intent", "outcome", "operator")
_OPEN_CALLS = text("ended_at IS NULL")


class Call(Base):
    """One row per resident's call, however many channels and legs it has."""

    __tablename__ = "calls"
    __table_args__ = (
        Index("ix_calls_started_at_id", "started_at", "id"),
        *(Index(f"ix_calls_{c}_started_at", c, "started_at", "id") for c in CALL_LIST_FILTERS),
        Index(
            "ix_calls_open_started_at",
            "started_at",
            sqlite_where=_OPEN_CALLS,
            postgresql_where=_OPEN_CALLS,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Asterisk's linkedid of the inbound leg: the same on every leg of the call.
    # Asterisk allows 150 (a long systemname): a longer linkedid is clipped, consistently.
    linkedid: Mapped[str] = mapped_column(ClippedString(64), unique=True)
    channel: Mapped[str | None] = mapped_column(String(128))
    caller_number: Mapped[str] = mapped_column(String(32), default="anonymous")
    caller_number_raw: Mapped[str | None] = mapped_column(String(128))
    caller_name: Mapped[str | None] = mapped_column(String(128))
    dialed_number: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str | None] = mapped_column(String(8))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    menu_ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    menu_choice: Mapped[str | None] = mapped_column(String(32))
    intent: Mapped[str | None] = mapped_column(String(32))
    queue: Mapped[str | None] = mapped_column(String(32))
    queue_joined_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    operator: Mapped[str | None] = mapped_column(String(64))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hangup_cause: Mapped[str | None] = mapped_column(String(64))
    hangup_by: Mapped[str | None] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(32))
    wait_seconds: Mapped[int | None] = mapped_column(Integer)
    talk_seconds: Mapped[int | None] = mapped_column(Integer)
    # What the speech menu heard: the transcript, how sure the classifier was, the audio kept.
    transcript: Mapped[str | None] = mapped_column(Text)
    intent_confidence: Mapped[float | None] = mapped_column(Float)
    utterance_path: Mapped[str | None] = mapped_column(String(255))
    # Who placed it (migration 0020): a resident calling in (DIRECTION_INBOUND), an operator
    # calling a resident back (DIRECTION_CALLBACK, click-to-call), an internal call, or the
    # automatic "is it fixed?" call to a resident (DIRECTION_FEEDBACK, no operator:
    # call_router/feedback_calls.py). Reports of answered calls and the staffing forecast count
    # inbound calls only; agent sessions and the abandoned calls' call-backs, callback ones.
    direction: Mapped[str] = mapped_column(
        String(16), default="inbound", server_default=text("'inbound'")
    )
    # The management company the call is for (migration 0014; call_router/tenant_wall.py);
    # NULL: the centre's own. Set from the dialled number when it is a tenant's.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    tenant: Mapped[Tenant | None] = relationship(lazy="select")
    # How the tenant was decided (call_router/tenant_routing.py SOURCES: number, phone,
    # earlier_call, request, keypad, speech, unknown, centre; migration 0016); NULL: by the
    # dialled number before the menu said more (or the menu never ran).
    tenant_source: Mapped[str | None] = mapped_column(String(16))
    # The caller's building when the menu knew it (a registered phone, an earlier call, a
    # confirmed house code): their next call to the centre goes to its tenant.
    building_id: Mapped[int | None] = mapped_column(Integer)
    # The cluster node that served the call (HOTLINE_NODE, migration 0022; `hotline cluster`);
    # NULL: a single box.
    node: Mapped[str | None] = mapped_column(String(32), index=True)

    @property
    def tenant_slug(self) -> str | None:
        return self.tenant.slug if self.tenant is not None else None

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", order_by="CallEvent.at", cascade="all, delete-orphan"
    )

    @property
    def timeline(self) -> list[TimelineItem]:
        """The events as people and the API read them: a row of several flow steps is one
        entry per step (call_router/timeline_items.py)."""
        return timeline_items(self.events)


class CallEvent(Base):
    """The call's timeline. `key` makes replays of the same Asterisk event idempotent."""

    __tablename__ = "call_events"
    __table_args__ = (UniqueConstraint("call_id", "key", name="uq_call_events_call_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Looked up by the unique (call_id, key) index: no index of its own (migration 0032).
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(160))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    call: Mapped[Call] = relationship(back_populates="events")


CALLBACK_OPEN = "open"
DIRECTION_INBOUND = "inbound"
DIRECTION_CALLBACK = "callback"
DIRECTION_INTERNAL = "internal"
DIRECTION_FEEDBACK = "feedback"
DIRECTIONS = (DIRECTION_INBOUND, DIRECTION_CALLBACK, DIRECTION_INTERNAL, DIRECTION_FEEDBACK)


class Callback(Base):
    """A resident to call back. At most one open entry per (tenant, caller number): migration
    0017; coalesce, as NULL (the centre's entries) never collides in a unique index."""

    __tablename__ = "callbacks"
    __table_args__ = (
        Index(
            "uq_callbacks_open_tenant_number",
            text("coalesce(tenant_id, 0)"),
            "caller_number",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    caller_number: Mapped[str] = mapped_column(String(32), index=True)
    status: Mapped[str] = mapped_column(String(16), default=CALLBACK_OPEN, index=True)
    reason: Mapped[str] = mapped_column(String(32))
    queue: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    last_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    note: Mapped[str | None] = mapped_column(Text)
    # --- the operators' work list (migration 0004; rules in call_router/callback_policy.py) ---
    # The resident's problem (intent) and the deadline category derived from it.
    intent: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str | None] = mapped_column(String(32))
    # Higher is called first (callback_policy.Priority); due_at: the promised call-back time.
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # Virtual hold: when the caller joined the queue, i.e. the place they keep.
    placed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An operator's lock on the entry; it lapses at claimed_until.
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Outbound tries that failed (no answer, busy); the retry policy caps them.
    tries: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_outcome: Mapped[str | None] = mapped_column(String(32))
    # The click-to-call being dialled now: a second one for the same entry is refused.
    active_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why the number is outside the dial-out plan (call_router/dial_plan.py), e.g.
    # "international", "premium_rate"; such an entry is listed but never dialled.
    refused_reason: Mapped[str | None] = mapped_column(String(32))
    # The call's tenant when the entry was opened (NULL: the centre's).
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    tenant: Mapped[Tenant | None] = relationship(lazy="select")

    @property
    def tenant_slug(self) -> str | None:
        return self.tenant.slug if self.tenant is not None else None


class Operator(Base):
    """The roster: each operator is one PJSIP endpoint and a member of their queues."""

    __tablename__ = "operators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128))
    sip_login: Mapped[str] = mapped_column(String(64), unique=True)
    sip_password: Mapped[str] = mapped_column(String(128))
    language: Mapped[str] = mapped_column(String(8), default="ru")
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The tenant whose specialist this operator is; NULL: the centre's staff.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    tenant: Mapped[Tenant | None] = relationship(lazy="select")

    skills: Mapped[list[OperatorSkill]] = relationship(
        back_populates="operator", cascade="all, delete-orphan", order_by="OperatorSkill.queue"
    )


class OperatorSkill(Base):
    __tablename__ = "operator_skills"
    __table_args__ = (UniqueConstraint("operator_id", "queue", name="uq_operator_skills_queue"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id", ondelete="CASCADE"))
    queue: Mapped[str] = mapped_column(String(32))
    penalty: Mapped[int] = mapped_column(Integer, default=0)

    operator: Mapped[Operator] = relationship(back_populates="skills")


# Feature tables live beside their feature. Importing them here puts every table on
# Base.metadata (Alembic, test clean-up) and every relationship (e.g. Call.disposition) on
# the mappers, whichever module is imported first.
from call_router import (  # noqa: E402, F401
    account_models,
    agent_models,
    callback_models,
    control_models,
    flow_models,
    meter_models,
    report_models,
    request_models,
    sip_ban_models,
    tenant_models,
)
from call_router.tenant_models import Tenant  # noqa: E402
