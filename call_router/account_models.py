"""Dashboard accounts, sessions and API tokens (the dashboard issue).

Shares `Base` with call_router/models.py, so its tables are on the same metadata/migrations.
No secret is stored in the clear: passwords as argon2 hashes, session cookies and API tokens
as SHA-256 digests (they are long random strings, so a fast digest is enough).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from call_router.models import Base, Operator, UTCDateTime, utcnow


class DashboardUser(Base):
    """A person who signs in to the dashboard: a supervisor or an operator."""

    __tablename__ = "dashboard_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    # An operator account is usually one person of the roster: their SIP login is "me".
    operator_id: Mapped[int | None] = mapped_column(
        ForeignKey("operators.id", ondelete="SET NULL"), nullable=True
    )
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The one tenant this account works for (sees only its rows); NULL: the centre's staff.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True
    )

    operator: Mapped[Operator | None] = relationship(lazy="joined")


class DashboardSession(Base):
    """A signed-in browser. In the database, so every dashboard process sees it."""

    __tablename__ = "dashboard_sessions"

    # SHA-256 hex of the cookie value: a database leak gives no usable cookie.
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("dashboard_users.id", ondelete="CASCADE"), index=True
    )
    # Sent back with every state-changing request of this session (form field or header).
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    user: Mapped[DashboardUser] = relationship(lazy="joined")


class ApiToken(Base):
    """A bearer token for an integration or an unattended screen; shown once, revocable."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The first characters of the token, so `hotline tokens list` can tell them apart.
    prefix: Mapped[str] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # As for accounts: one tenant's token, or (NULL) a centre-wide one.
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenants.id", ondelete="RESTRICT"), nullable=True
    )
