"""Request-scoped dependencies. Everything comes from `app.state`, set once by `create_app`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Depends, HTTPException, Request
from fastapi.templating import Jinja2Templates
from sqlalchemy.orm import Session

from call_router import accounts
from call_router import tenant_wall as wall
from call_router.accounts import OPERATOR, Principal
from call_router.ami_client import AmiLink
from call_router.call_control.monitoring import SpyModes
from call_router.db import Database
from call_router.settings import Settings
from dashboard.live_hub import LiveHub


@dataclass(frozen=True)
class DashboardState:
    """What the app was built with; stored on `app.state.dashboard`."""

    settings: Settings
    db: Database
    templates: Jinja2Templates
    # The hotline's local time zone: what "today" means on the page.
    zone: ZoneInfo
    # This process's Redis client and shared live pictures (dashboard/live_hub.py).
    live: LiveHub
    # This process's one AMI connection for agent and call control (logged in once).
    ami: AmiLink
    # The monitor modes supervisors switched to by DTMF (fed by `ami`'s DTMFEnd events).
    spy_modes: SpyModes = field(default_factory=SpyModes)


def get_state(request: Request) -> DashboardState:
    state: DashboardState = request.app.state.dashboard
    return state


StateDep = Annotated[DashboardState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_db(state: StateDep) -> Database:
    return state.db


def get_templates(state: StateDep) -> Jinja2Templates:
    return state.templates


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    # Sync routes and a sync generator: FastAPI runs both in its thread pool, so a slow
    # query never blocks the event loop.
    with db.session() as session:
        yield session


def get_ami(state: StateDep) -> AmiLink:
    return state.ami


SettingsDep = Annotated[Settings, Depends(get_settings)]
AmiDep = Annotated[AmiLink, Depends(get_ami)]
DatabaseDep = Annotated[Database, Depends(get_db)]
TemplatesDep = Annotated[Jinja2Templates, Depends(get_templates)]
# scope="function": the transaction commits before the response is sent. FastAPI's default
# ends a yield dependency after sending, so a client could read its own write back unapplied
# (or be told "done" about a commit that then failed).
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# --- who is asking (the rules are in dashboard/auth.py) ------------------------------------

SESSION_COOKIE = "hotline_session"


class NotAuthenticated(Exception):
    """No (valid) credentials: 401 JSON for /api/*, a redirect to /login for pages."""


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    # A malformed header is a failed credential, never a reason to fall back to the cookie.
    return value.strip() if scheme.lower() == "bearer" else ""


def resolve_principal(request: Request, state: StateDep) -> Principal | None:
    """The caller, from `Authorization: Bearer` or else the session cookie; None if neither
    is valid. Sync on purpose: FastAPI runs it in its thread pool, off the event loop."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    token = _bearer(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    principal: Principal | None = None
    if token or (token is None and cookie):
        now = datetime.now(UTC)
        with state.db.session() as session:
            if token:
                principal = accounts.token_principal(session, token, now=now)
            else:
                principal = accounts.session_principal(session, cookie or "", now=now)
    request.state.principal = principal
    return principal


def current_principal(
    principal: Annotated[Principal | None, Depends(resolve_principal)],
) -> Principal:
    """The acting user or token (`.role`, `.operator_login`); its router's access rule has
    already admitted it, so routes only use it to know *who*."""
    if principal is None:
        raise NotAuthenticated()
    return principal


OptionalPrincipal = Annotated[Principal | None, Depends(resolve_principal)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]


async def tenant_wall(principal: OptionalPrincipal) -> None:
    """App-wide: the rest of this request sees only the principal's tenant's rows (the wall
    is call_router/tenant_wall.py). Async on purpose: the scope is set in the request's own
    context, which the thread-pool work of the route copies."""
    wall.enter(wall.tenant_scope(principal.tenant_id if principal is not None else None))


# --- on whose behalf (who is acting comes from the credentials, never from the request) ------


@dataclass(frozen=True)
class Actor:
    """The signed-in principal and the roster login it works as.

    An operator account always works as its own linked login: a login named in the request
    (path or body, in any content type) that is not theirs is refused, and naming none is not
    a supervisor override. A supervisor (or supervisor token) may name an operator to act for
    and is recorded as `by` beside that operator; naming none acts as the supervisor.
    """

    principal: Principal

    @property
    def by(self) -> str:
        """Who did it, for history rows: the user name, or `token:<name>` for an API token
        (usernames cannot contain ':', so the two never collide)."""
        p = self.principal
        return p.name if p.kind == "user" else f"token:{p.name}"

    @property
    def is_operator(self) -> bool:
        return self.principal.role == OPERATOR

    def operator(self, named: str | None) -> str | None:
        """The roster login this request acts as: the operator's own (403 if `named` is
        someone else, or if the account is linked to no operator), else the supervisor's
        choice (None: nobody named, the supervisor acts as themself)."""
        if not self.is_operator:
            return named
        own = self.principal.operator_login
        if own is None:
            raise HTTPException(403, detail="this operator account is linked to no operator")
        if named is not None and named.strip() != own:
            raise HTTPException(403, detail="an operator may act only as themself")
        return own

    def required_operator(self, named: str | None) -> str:
        """As `operator`, for actions that need one (claiming, calling): a supervisor must
        name whom they act for."""
        login = self.operator(named)
        if login is None:
            raise HTTPException(422, detail="name the operator to act for (`operator`)")
        return login


def current_actor(principal: PrincipalDep) -> Actor:
    return Actor(principal)


ActorDep = Annotated[Actor, Depends(current_actor)]
