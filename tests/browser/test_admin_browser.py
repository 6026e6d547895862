"""A supervisor makes an operator account on /admin/users in a real Chromium, reads the password
shown once, and that operator signs in through the login form of the running hotline."""

from __future__ import annotations

import secrets

import pytest

from call_router.settings import Settings
from tests.browser.conftest import Account, BrowserPage, sign_in
from tests.conftest import add_operator

pytestmark = pytest.mark.asterisk


def test_a_supervisor_creates_an_operator_account_and_the_operator_signs_in(
    stack: Settings, browser_page: BrowserPage, anonymous_page: BrowserPage
) -> None:
    roster = add_operator("Nina Newcomer", "heating")
    username = f"nina-{secrets.token_hex(3)}"
    page = browser_page.page

    page.click("#nav-admin")
    page.wait_for_selector("#user-form")
    page.fill("#user-form input[name=username]", username)
    page.select_option("#user-form select[name=role]", "operator")
    page.select_option("#user-form select[name=operator]", roster["sip_login"])
    # No password typed: one is generated and shown once.
    page.click("#user-form button[type=submit]")
    page.wait_for_selector("#shown-secret-value", timeout=10_000)
    password = page.inner_text("#shown-secret-value").strip()
    assert len(password) >= 10
    row = page.locator(f"tr[id='user-{username}']")
    assert row.get_attribute("data-active") == "true"
    assert row.locator("select[name=operator]").input_value() == roster["sip_login"]

    operator = anonymous_page.page
    sign_in(operator, stack.dashboard_url, Account(username, password))
    assert f"{username} (operator)" in operator.inner_text("#current-user")
    assert operator.locator("#nav-admin").count() == 0
    denied = operator.goto(f"{stack.dashboard_url}/admin/users")
    assert denied is not None and denied.status == 403
    me = operator.evaluate("fetch('/api/me').then(r => r.json())")
    assert me["operator_login"] == roster["sip_login"]

    # Reloading the list shows no password any more.
    page.goto(f"{stack.dashboard_url}/admin/users?lang=en")
    assert password not in page.content()
    assert browser_page.dialogs == [] and anonymous_page.dialogs == []
