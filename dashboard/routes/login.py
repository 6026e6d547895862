"""Signing in and out: `/login` (GET form, POST credentials), `POST /logout`, `GET /api/me`.

The login form has no session yet, so it is protected against login CSRF with a double-submit
cookie: the form's hidden field must equal a random cookie set with the form. Failed sign-ins
are counted per account and per client address (dashboard/login_throttle.py); past the limit
the form answers 429 "try again in N minutes", the same whether the account exists or not.
A browser that signed in to an account before is trusted for it (a device cookie,
dashboard/device_trust.py): the account's lock-out does not apply to it, its failures count
per device.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel

from call_router import accounts
from dashboard import login_throttle
from dashboard.auth import CSRF_FIELD, LOGIN_CSRF_COOKIE, safe_next
from dashboard.deps import SESSION_COOKIE, DashboardState, PrincipalDep, StateDep
from dashboard.device_trust import DEVICE_COOKIE, LIFETIME, DeviceTrust
from dashboard.i18n import render
from dashboard.login_throttle import LoginThrottle

# Public: the form and the credentials check.
public_router = APIRouter(include_in_schema=False)
# Signed-in users: sign out, who am I.
router = APIRouter()

FORM_MAX = 1024


def throttle(request: Request, state: DashboardState) -> LoginThrottle:
    settings = state.settings
    return login_throttle.for_app(request.app, settings.redis_url, settings.redis_prefix)


def device_trust(state: DashboardState) -> DeviceTrust:
    return DeviceTrust(state.settings.dashboard_device_key.encode())


def _client_address(request: Request) -> str:
    # Behind a reverse proxy this is the proxy unless uvicorn trusts its X-Forwarded-For
    # (HOTLINE_FORWARDED_ALLOW_IPS, dashboard/main.py); then it is the browser's address.
    return request.client.host if request.client is not None else "unknown"


def _login_form(
    request: Request,
    state: StateDep,
    next_path: str,
    *,
    error: bool,
    status_code: int = 200,
    locked_minutes: int | None = None,
) -> Response:
    # Reused while valid, so two open login tabs both work.
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or accounts.new_secret()
    response = render(
        state.templates,
        request,
        "login.html",
        {
            "next": next_path,
            "login_csrf": token,
            "error": error,
            "locked_minutes": locked_minutes,
            "search": None,
        },
        state.settings.default_language,
        status_code=status_code,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=state.settings.dashboard_https,
        path=request.app.url_path_for("login_submit"),
    )
    return response


@public_router.get("/login", response_class=HTMLResponse, name="login_page")
def login_page(request: Request, state: StateDep, next: str | None = None) -> Response:
    return _login_form(request, state, safe_next(next), error=False)


# Where a role lands after signing in, when no page was asked for (default: today's calls).
HOME_BY_ROLE = {"dispatcher": "/dispatch", "crew": "/crew"}


@public_router.post("/login", name="login_submit")
def login_submit(
    request: Request,
    state: StateDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=FORM_MAX)],
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=FORM_MAX)] = "",
    remember: Annotated[bool, Form()] = False,
    next: Annotated[str, Form(max_length=FORM_MAX)] = "/",
) -> Response:
    target = safe_next(next)
    if not accounts.same_secret(request.cookies.get(LOGIN_CSRF_COOKIE), csrf_token):
        # Expired form or a cross-site post: show a fresh form, say nothing about the account.
        return _login_form(request, state, target, error=True, status_code=400)
    name, address = username.strip(), _client_address(request)
    limiter = throttle(request, state)
    trust = device_trust(state)
    device_cookie = request.cookies.get(DEVICE_COOKIE)
    device = trust.device_for(device_cookie, name)
    locked = limiter.reserve(name, address, device)
    if locked is not None:
        # Refused before the password is even checked, so guessing on gains nothing.
        response = _login_form(
            request, state, target, error=False, status_code=429, locked_minutes=locked.minutes
        )
        response.headers["Retry-After"] = str(locked.seconds)
        return response
    settings = state.settings
    now = datetime.now(UTC)
    lifetime = (
        timedelta(days=settings.session_remember_days)
        if remember
        else timedelta(hours=settings.session_hours)
    )
    with state.db.session() as session:
        user = accounts.authenticate(session, name, password, now=now)
        cookie = None
        if user is not None:
            cookie, _row = accounts.start_session(session, user, now=now, lifetime=lifetime)
    if cookie is None:
        limiter.failed(name, address, device)
        return _login_form(request, state, target, error=True, status_code=401)
    limiter.succeeded(name, device)
    if target == "/" and user is not None and user.role in HOME_BY_ROLE:
        # Dispatchers and crews open no call pages: their work starts elsewhere.
        target = HOME_BY_ROLE[user.role]
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        cookie,
        max_age=int(lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=settings.dashboard_https,
        path="/",
    )
    login_path = request.app.url_path_for("login_submit")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=login_path)
    # This browser is now known for this account (a fresh entry: an old one ages out).
    response.set_cookie(
        DEVICE_COOKIE,
        trust.issue(device_cookie, name),
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=settings.dashboard_https,
        path=login_path,
    )
    return response


@router.post("/logout", name="logout", include_in_schema=False)
def logout(request: Request, state: StateDep, principal: PrincipalDep) -> Response:
    # The router's rule has checked the CSRF token of this cookie session.
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and principal.kind == "user":
        with state.db.session() as session:
            accounts.end_session(session, cookie)
    response = RedirectResponse(request.app.url_path_for("login_page"), status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


class MeOut(BaseModel):
    name: str
    kind: str
    role: str
    operator_login: str | None


@router.get("/api/me", response_model=MeOut)
def me(principal: PrincipalDep) -> MeOut:
    """Who the credentials belong to (pages' scripts use it to know "my" operator login)."""
    return MeOut(
        name=principal.name,
        kind=principal.kind,
        role=principal.role,
        operator_login=principal.operator_login,
    )
