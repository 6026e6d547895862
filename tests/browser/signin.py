"""Signing in for the operator-side browser tests: a supervisor token for the test's own API
checks, and an operator account linked to a roster login that signs in through /login (so the
pages' scripts run with a real session cookie and CSRF token)."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from call_router import accounts
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import Settings
from tests.conftest import run_hotline


def supervisor_api(stack: Settings) -> httpx.Client:
    """An httpx client with a fresh supervisor API token (close it when done)."""
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            token, _ = accounts.create_token(
                session, "supervisor", name=f"test-{secrets.token_hex(3)}", now=utcnow()
            )
    finally:
        db.dispose()
    return httpx.Client(
        base_url=stack.dashboard_url, timeout=10, headers={"Authorization": f"Bearer {token}"}
    )


def operator_account(stack: Settings, sip_login: str) -> tuple[str, str]:
    """(username, password) of a new operator account linked to the roster's `sip_login`."""
    username, password = f"u_{sip_login}"[:64], secrets.token_urlsafe(16)
    db = Database(stack.db_url)
    try:
        with db.session() as session:
            accounts.create_user(
                session, username, password, "operator", operator_login=sip_login, now=utcnow()
            )
    finally:
        db.dispose()
    return username, password


def sign_in(page: Any, stack: Settings, username: str, password: str) -> None:
    page.goto(f"{stack.dashboard_url}/login?lang=en")
    page.fill("#login-form input[name='username']", username)
    page.fill("#login-form input[name='password']", password)
    with page.expect_navigation():
        page.click("#login-form button[type='submit']")
    assert "/login" not in page.url, "the sign-in was refused"


def role_account(role: str) -> tuple[str, str]:
    """(username, password) of a new dashboard account of `role`, made by `hotline users add`."""
    username, password = f"{role}-{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    run_hotline("users", "add", username, "--role", role, "--password-stdin", stdin=password + "\n")
    return username, password
