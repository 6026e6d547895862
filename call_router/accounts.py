"""Dashboard accounts: users and passwords, browser sessions, API tokens.

The pure half (hashing, token shapes, CSRF comparison, expiry) is plain functions; the store half
takes a SQLAlchemy session and an injected `now`, so the tests control the clock. Tables are in
call_router/account_models.py. The web side (cookies, headers, role checks) is dashboard/auth.py.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from call_router.account_models import ApiToken, DashboardSession, DashboardUser
from call_router.models import Operator

SUPERVISOR: Final = "supervisor"
OPERATOR: Final = "operator"
# Service requests (call_router/service_requests.py): a dispatcher assigns jobs to crews; a
# crew account reports its jobs' progress. Neither opens the calls, callbacks or operator pages.
DISPATCHER: Final = "dispatcher"
CREW: Final = "crew"
ROLES = (SUPERVISOR, OPERATOR, DISPATCHER, CREW)
Role = Literal["supervisor", "operator", "dispatcher", "crew"]

TOKEN_PREFIX = "hlt_"
MIN_PASSWORD_LENGTH = 10
USERNAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

# argon2id with the library's defaults (RFC 9106 "low memory" profile).
_hasher = PasswordHasher()
# Verified against when the username is unknown, so a wrong name costs as long as a wrong
# password and response times do not reveal which usernames exist.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(ValueError):
    """Bad input for an account operation; the message is safe to show. `code` and `values`
    let a page say it in the reader's language (dashboard/i18n.py `account.err.<code>`)."""

    def __init__(self, message: str, code: str = "invalid", **values: object) -> None:
        super().__init__(message)
        self.code = code
        self.values = values


# --- pure parts -----------------------------------------------------------------------------


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_matches(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A strong random password (about 120 bits) for `users add` without one."""
    return secrets.token_urlsafe(15)


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(
            f"password must be at least {MIN_PASSWORD_LENGTH} characters",
            "password_short",
            min=MIN_PASSWORD_LENGTH,
        )
    if len(password) > 1024:
        raise AccountError("password is too long", "password_long")
    return password


def check_username(username: str) -> str:
    if not USERNAME_RE.match(username):
        raise AccountError(
            "username: 1-64 of letters, digits and . _ @ -, starting with a letter or digit",
            "username",
        )
    return username


def check_role(role: str) -> Role:
    if role == SUPERVISOR:
        return SUPERVISOR
    if role == OPERATOR:
        return OPERATOR
    if role == DISPATCHER:
        return DISPATCHER
    if role == CREW:
        return CREW
    raise AccountError(f"role must be one of: {', '.join(ROLES)}", "role")


def digest(secret: str) -> str:
    """How session cookies and API tokens are stored: SHA-256 hex."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret() -> str:
    return secrets.token_urlsafe(32)


def new_api_token() -> str:
    return TOKEN_PREFIX + new_secret()


def looks_like_api_token(value: str) -> bool:
    return value.startswith(TOKEN_PREFIX) and 20 <= len(value) <= 128


def same_secret(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing side never matches."""
    if not expected or not given:
        return False
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True)
class Principal:
    """Who is acting: a signed-in user (cookie session) or an API token (Bearer)."""

    kind: Literal["user", "token"]
    name: str
    role: Role
    # The roster SIP login of a linked operator account: what "my" means on operator pages.
    operator_login: str | None = None
    user_id: int | None = None
    token_id: int | None = None
    # Set for cookie sessions only: state-changing requests must send it back.
    csrf_token: str | None = None
    # The tenant whose rows alone it sees (call_router/tenant_wall.py); None: the centre's staff.
    tenant_id: int | None = None

    @property
    def is_supervisor(self) -> bool:
        return self.role == SUPERVISOR


# --- users ----------------------------------------------------------------------------------


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(DashboardUser)) or 0)


def get_user(session: Session, username: str) -> DashboardUser | None:
    return session.scalar(select(DashboardUser).where(DashboardUser.username == username))


def _operator_by_login(session: Session, sip_login: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.sip_login == sip_login))
    if operator is None:
        raise AccountError(
            f"no operator with SIP login {sip_login!r} in the roster",
            "no_operator",
            login=sip_login,
        )
    return operator


def _tenant_id(session: Session, slug: str | None) -> int | None:
    """The id of tenant `slug` (None: the centre, i.e. no tenant)."""
    if slug is None:
        return None
    from call_router.tenants import get_tenant

    tenant = get_tenant(session, slug)
    if tenant is None:
        raise AccountError(f"no tenant {slug!r}", "no_tenant", name=slug)
    return tenant.id


def create_user(
    session: Session,
    username: str,
    password: str,
    role: str,
    *,
    operator_login: str | None = None,
    tenant: str | None = None,
    now: datetime,
) -> DashboardUser:
    check_username(username)
    checked_role = check_role(role)
    check_password(password)
    if get_user(session, username) is not None:
        raise AccountError(f"user {username!r} already exists", "user_exists", name=username)
    operator = _operator_by_login(session, operator_login) if operator_login else None
    user = DashboardUser(
        username=username,
        password_hash=hash_password(password),
        role=checked_role,
        operator=operator,
        active=True,
        created_at=now,
        tenant_id=_tenant_id(session, tenant),
    )
    session.add(user)
    session.flush()
    return user


def list_users(session: Session) -> list[DashboardUser]:
    return list(session.scalars(select(DashboardUser).order_by(DashboardUser.username)))


def _existing_user(session: Session, username: str) -> DashboardUser:
    user = get_user(session, username)
    if user is None:
        raise AccountError(f"no user {username!r}", "no_user", name=username)
    return user


def set_active(session: Session, username: str, active: bool) -> DashboardUser:
    """Disabling also signs the user out everywhere."""
    user = _existing_user(session, username)
    user.active = active
    if not active:
        end_user_sessions(session, user.id)
    return user


def link_operator(session: Session, username: str, operator_login: str | None) -> DashboardUser:
    """Make an account work as a roster operator (their SIP login is "me"), or unlink it."""
    user = _existing_user(session, username)
    user.operator = _operator_by_login(session, operator_login) if operator_login else None
    session.flush()
    return user


def password_or_generated(typed: str | None) -> tuple[str, bool]:
    """(the password to set, whether it was generated and must be shown once)."""
    return (typed, False) if typed else (generate_password(), True)


def set_password(session: Session, username: str, password: str) -> DashboardUser:
    """A new password ends the user's existing sessions (a stolen cookie dies with it)."""
    user = _existing_user(session, username)
    user.password_hash = hash_password(check_password(password))
    end_user_sessions(session, user.id)
    return user


def authenticate(
    session: Session, username: str, password: str, *, now: datetime
) -> DashboardUser | None:
    """The active user with this password, or None (same cost whether the name exists)."""
    user = get_user(session, username)
    if user is None:
        password_matches(_DUMMY_HASH, password)
        return None
    if not password_matches(user.password_hash, password) or not user.active:
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.last_login_at = now
    return user


def user_principal(user: DashboardUser, csrf_token: str | None = None) -> Principal:
    return Principal(
        kind="user",
        name=user.username,
        role=check_role(user.role),
        operator_login=user.operator.sip_login if user.operator is not None else None,
        user_id=user.id,
        csrf_token=csrf_token,
        tenant_id=user.tenant_id,
    )


# --- browser sessions -----------------------------------------------------------------------


def start_session(
    session: Session, user: DashboardUser, *, now: datetime, lifetime: timedelta
) -> tuple[str, DashboardSession]:
    """A new session; returns the cookie value (shown to the browser only) and the row."""
    cookie = new_secret()
    row = DashboardSession(
        id=digest(cookie),
        user_id=user.id,
        csrf_token=new_secret(),
        created_at=now,
        expires_at=now + lifetime,
    )
    session.add(row)
    # Expired sessions of anyone are swept here, on the rare write, not on every read.
    session.execute(delete(DashboardSession).where(DashboardSession.expires_at <= now))
    session.flush()
    return cookie, row


def session_principal(session: Session, cookie: str, *, now: datetime) -> Principal | None:
    row = session.get(DashboardSession, digest(cookie))
    if row is None or row.expires_at <= now or not row.user.active:
        return None
    return user_principal(row.user, csrf_token=row.csrf_token)


def end_session(session: Session, cookie: str) -> None:
    session.execute(delete(DashboardSession).where(DashboardSession.id == digest(cookie)))


def end_user_sessions(session: Session, user_id: int) -> None:
    session.execute(delete(DashboardSession).where(DashboardSession.user_id == user_id))


# --- API tokens -----------------------------------------------------------------------------

# last_used_at is written at most this often per token: a busy integration must not turn
# every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def create_token(
    session: Session, role: str, *, name: str | None, now: datetime, tenant: str | None = None
) -> tuple[str, ApiToken]:
    """A new API token; the clear value is returned once and never stored."""
    checked_role = check_role(role)
    label = (name or "").strip() or f"{checked_role}-token"
    if len(label) > 64:
        raise AccountError("token name: at most 64 characters", "token_name")
    token = new_api_token()
    row = ApiToken(
        name=label,
        token_hash=digest(token),
        prefix=token[:12],
        role=checked_role,
        created_at=now,
        tenant_id=_tenant_id(session, tenant),
    )
    session.add(row)
    session.flush()
    return token, row


def token_principal(session: Session, token: str, *, now: datetime) -> Principal | None:
    if not looks_like_api_token(token):
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION:
        row.last_used_at = now
    return Principal(
        kind="token",
        name=row.name,
        role=check_role(row.role),
        token_id=row.id,
        tenant_id=row.tenant_id,
    )


def list_tokens(session: Session) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def revoke_token(session: Session, token_id: int, *, now: datetime) -> ApiToken:
    row = session.get(ApiToken, token_id)
    if row is None:
        raise AccountError(f"no API token {token_id}", "no_token", id=token_id)
    if row.revoked_at is None:
        row.revoked_at = now
    return row
