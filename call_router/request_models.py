"""Service requests (a resident's job for a crew), their history, the calls that mention them,
the crews that do the work, and Open311 API keys. Rules: call_router/requests.py.

Every table here carries `tenant_id` (NULL: the centre's own) and sits behind the tenant wall
(call_router/tenant_wall.py `OWNED`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from call_router.models import Base, UTCDateTime, utcnow

NUMBER_BASE = 1000


class Crew(Base):
    """A repair crew or contractor: which categories of job it takes, in which districts."""

    __tablename__ = "crews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    name: Mapped[str] = mapped_column(String(64))
    # Category codes (service_categories.yaml); empty: every category.
    categories: Mapped[list[str]] = mapped_column(JSON, default=list)
    # District names; empty: every district.
    districts: Mapped[list[str]] = mapped_column(JSON, default=list)
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ServiceRequest(Base):
    """One job: "no heating in flat 12". Many calls may mention it; duplicates attach to it."""

    __tablename__ = "service_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True, index=True
    )
    category: Mapped[str] = mapped_column(String(32), index=True)
    street: Mapped[str] = mapped_column(String(128))
    house: Mapped[str] = mapped_column(String(16))
    flat: Mapped[str | None] = mapped_column(String(16), nullable=True)
    district: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    long: Mapped[float | None] = mapped_column(Float, nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    caller_number: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    caller_name: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # 0 normal, 1 high, 2 emergency (call_router/requests.py PRIORITIES).
    priority: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(32), index=True)
    # Where it came from: phone (an operator, from a call), api, open311, cli.
    source: Mapped[str] = mapped_column(String(16), default="api")
    crew_id: Mapped[int | None] = mapped_column(
        ForeignKey("crews.id", ondelete="SET NULL"), nullable=True, index=True
    )
    duplicate_of_id: Mapped[int | None] = mapped_column(
        ForeignKey("service_requests.id", ondelete="SET NULL"), nullable=True
    )
    # "<tenant or 0>|<category>|<address key>" while the request is open, NULL once it is not:
    # unique, so two concurrent reports of one problem can never both open a request.
    open_key: Mapped[str | None] = mapped_column(String(320), unique=True, nullable=True)
    # How many reports (the first and every duplicate that attached).
    reports: Mapped[int] = mapped_column(Integer, default=1)
    # Open311 `token` of a request made through the API (tokens/{token}).
    token: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    status_notes: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sla_deadline: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Optimistic locking: every UPDATE says `WHERE version = <read>` and bumps it, so a
    # concurrent change is refused (StaleDataError), never silently overwritten.
    version: Mapped[int] = mapped_column(Integer, nullable=False, default=1)
    # The automatic "is it fixed?" call once it is done (call_router/request_feedback.py):
    # when the next try may be placed (NULL: no call wanted), tries so far, the resident's
    # answer (1 solved, 2 not solved) and when it was given.
    feedback_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    feedback_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    feedback_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    feedback_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    crew: Mapped[Crew | None] = relationship(lazy="joined")
    events: Mapped[list[RequestEvent]] = relationship(
        back_populates="request", order_by="RequestEvent.id", cascade="all, delete-orphan"
    )
    calls: Mapped[list[RequestCall]] = relationship(
        back_populates="request", order_by="RequestCall.linked_at", cascade="all, delete-orphan"
    )

    __mapper_args__: Any = {"version_id_col": version}

    @property
    def number(self) -> str:
        """What the resident says on the phone and Open311's service_request_id: the id
        plus 1000 (never a single menu key), so it needs no second write after the insert."""
        return str(NUMBER_BASE + self.id)


class RequestEvent(Base):
    """The history of a request: every change, who made it, when, and a note."""

    __tablename__ = "request_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_requests.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True
    )
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # created, status, assigned, reported_again, call_linked
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(128))
    from_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    to_state: Mapped[str | None] = mapped_column(String(32), nullable=True)
    note: Mapped[str | None] = mapped_column(String(1000), nullable=True)

    request: Mapped[ServiceRequest] = relationship(back_populates="events")


class RequestCall(Base):
    """A call that mentions a request (the first report, a "what is happening?" call …)."""

    __tablename__ = "request_calls"

    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_requests.id", ondelete="CASCADE"), primary_key=True
    )
    call_id: Mapped[int] = mapped_column(
        ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True
    )
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    request: Mapped[ServiceRequest] = relationship(back_populates="calls")


class Open311Key(Base):
    """An Open311 client's API key (a city portal, a 311 app). Only its SHA-256 is kept."""

    __tablename__ = "open311_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Requests posted with this key belong to this tenant (NULL: the centre's).
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True
    )
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CrewMember(Base):
    """A crew-role dashboard account working as one crew: it may see and add the photos of
    that crew's jobs only (`hotline crews link CREW USER`)."""

    __tablename__ = "crew_members"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="CASCADE"), primary_key=True
    )
    crew_id: Mapped[int] = mapped_column(ForeignKey("crews.id", ondelete="CASCADE"), index=True)


class RequestAttachment(Base):
    """A photo or document of a request (the dashboard's upload, the crew's "done" photo).

    The bytes are a file under the state folder (`Settings.attachments_dir`), named by
    `stored_as` (random, never the uploader's name); this row keeps what the reader sees.
    Rules: call_router/request_attachments.py.
    """

    __tablename__ = "request_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(
        ForeignKey("service_requests.id", ondelete="CASCADE"), index=True
    )
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True
    )
    # The uploader's file name, cleaned (call_router/attachment_checks.py clean_name).
    name: Mapped[str] = mapped_column(String(128))
    # What the content is (sniffed from the bytes, never the browser's word).
    content_type: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    stored_as: Mapped[str] = mapped_column(String(64), unique=True)
    uploaded_by: Mapped[str] = mapped_column(String(128))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
