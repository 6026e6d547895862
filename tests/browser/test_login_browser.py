"""Signing in through the real form in a real Chromium against the running hotline; accounts are
made with the real CLI."""

from __future__ import annotations

import re
import secrets

import pytest

from call_router.settings import Settings
from tests.browser.conftest import Account, BrowserPage, sign_in
from tests.conftest import run_hotline

pytestmark = pytest.mark.asterisk


def test_a_supervisor_signs_in_through_the_form_and_sees_the_live_wallboard(
    stack: Settings, anonymous_page: BrowserPage, supervisor_account: Account
) -> None:
    page = anonymous_page.page
    base = stack.dashboard_url

    page.goto(f"{base}/wallboard?lang=en")
    # No session: the wallboard sends the browser to the login form, remembering where to.
    page.wait_for_selector("#login-form", timeout=10_000)
    assert re.search(r"/login\?next=", page.url), page.url

    page.fill("#login-form input[name=username]", supervisor_account.username)
    page.fill("#login-form input[name=password]", supervisor_account.password + "-wrong")
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#login-error", timeout=10_000)
    assert "/login" in page.url
    assert not [c for c in page.context.cookies() if c["name"] == "hotline_session"]

    page.fill("#login-form input[name=username]", supervisor_account.username)
    page.fill("#login-form input[name=password]", supervisor_account.password)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#wb-status:has-text('Live')", timeout=15_000)
    assert page.url.endswith("/wallboard?lang=en")
    session = next(c for c in page.context.cookies() if c["name"] == "hotline_session")
    assert session["httpOnly"] is True and session["sameSite"] == "Lax"
    assert supervisor_account.username in page.inner_text("#current-user")

    page.click("form.logout button[type=submit]")
    page.wait_for_selector("#login-form", timeout=10_000)
    page.goto(f"{base}/wallboard")
    page.wait_for_selector("#login-form", timeout=10_000)
    assert anonymous_page.dialogs == []


def test_an_operator_cannot_open_supervisor_pages(
    stack: Settings, anonymous_page: BrowserPage
) -> None:
    operator = Account(f"browser-op-{secrets.token_hex(3)}", secrets.token_urlsafe(18))
    run_hotline(
        "users",
        "add",
        operator.username,
        "--role",
        "operator",
        "--password-stdin",
        stdin=operator.password + "\n",
    )
    page = anonymous_page.page
    sign_in(page, stack.dashboard_url, operator)

    for path in ("/wallboard", "/reports"):
        response = page.goto(f"{stack.dashboard_url}{path}")
        assert response is not None and response.status == 403, path
    response = page.goto(f"{stack.dashboard_url}/calls?lang=en")
    assert response is not None and response.status == 200
    assert page.locator("nav a[href='/wallboard']").count() == 0
