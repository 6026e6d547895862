# The Open311 API keys: created (the plain key shown once, its SHA-256 stored), listed,
# revoked, and looked up for a request's api_key.

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from call_router.models import utcnow
from call_router.request_models import Open311Key
from call_router.service_requests import RequestError, clean_text

KEY_PREFIX = "o311_"


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(
    session: Session, name: str, *, tenant_id: int | None = None, now: datetime | None = None
) -> tuple[str, Open311Key]:
    """A new key: the plain key is returned once; only its SHA-256 is stored."""
    clean = clean_text(name, "name", 64, required=True)
    assert clean is not None
    if session.scalar(select(Open311Key.id).where(Open311Key.name == clean)) is not None:
        raise RequestError(f"a key named {clean!r} exists", "exists")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = Open311Key(
        tenant_id=tenant_id, name=clean, key_hash=_key_digest(plain), created_at=now or utcnow()
    )
    session.add(row)
    session.flush()
    return plain, row


def list_keys(session: Session) -> list[Open311Key]:
    return list(session.scalars(select(Open311Key).order_by(Open311Key.name)))


def revoke_key(session: Session, name: str, *, now: datetime | None = None) -> Open311Key:
    row = session.scalar(select(Open311Key).where(Open311Key.name == name))
    if row is None:
        raise RequestError(f"no key named {name!r}", "not_found")
    row.revoked_at = row.revoked_at or now or utcnow()
    session.flush()
    return row


def key_for(
    session: Session, plain: str | None, *, now: datetime | None = None
) -> Open311Key | None:
    """The live key `plain` is, or None (unknown, revoked, or not a key at all)."""
    if not plain or not plain.startswith(KEY_PREFIX) or len(plain) > 128:
        return None
    row = session.scalar(select(Open311Key).where(Open311Key.key_hash == _key_digest(plain)))
    if row is None or row.revoked_at is not None:
        return None
    row.last_used_at = now or utcnow()
    return row
