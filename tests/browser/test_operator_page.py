"""The operator page in a real browser against the real hotline: a resident's call comes in
through SIP (SIPp as the carrier), the operator's baresip answers it, and the page shows the
screen-pop live; the disposition typed into the page lands on the call."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.browser.conftest import ARTIFACTS, BrowserPage
from tests.browser.signin import operator_account, sign_in, supervisor_api
from tests.browser.test_dashboard_browser import HOSTILE_NAME, CallInBackground
from tests.conftest import add_operator, finished_call, run_hotline, wait_for

pytestmark = pytest.mark.asterisk

RESIDENT = "+74954440001"


def open_entry(api: httpx.Client, number: str) -> dict[str, Any] | None:
    rows = api.get("/api/callbacks").json()
    return next((row for row in rows if row["caller_number"] == number), None)


def test_the_screen_pop_follows_a_real_call_and_the_disposition_lands_on_it(
    stack: Settings, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    operator = add_operator("Opal Screenpop", "heating")
    login, password = operator["sip_login"], operator["sip_password"]
    api = supervisor_api(stack)
    try:
        sign_in(page, stack, *operator_account(stack, login))
        # A signed-in operator's page is always their own: no `?operator=` needed.
        page.goto(f"{stack.dashboard_url}/operator?lang=en")
        page.wait_for_selector("#op-status:has-text('Live')", timeout=10_000)
        assert page.get_attribute("#operator", "data-login") == login

        # Pause with a reason and back, through the agents API (cookie + CSRF token).
        page.select_option("#op-pause-reason", "lunch")
        page.click("#op-pause")
        page.wait_for_selector("#op-agent .agent-state[data-paused='yes']", timeout=20_000)
        assert "lunch" in page.inner_text("#op-state")
        page.click("#op-unpause")
        page.wait_for_selector("#op-agent .agent-state[data-paused='no']", timeout=20_000)

        # The resident tried before: the phone only rang, they gave up (history + callback).
        with Softphone(stack, login, password, answer=False):
            missed = place_call(stack, dtmf="3", from_number=RESIDENT, hold=8)
            assert missed.answered, missed.detail
            first = finished_call(api, RESIDENT)
        assert first["outcome"] == "abandoned_in_queue"
        entry = wait_for(lambda: open_entry(api, RESIDENT), what="the missed call's entry")

        page.evaluate("window.__noReload = true")
        with (
            Softphone(stack, login, password),
            CallInBackground(
                stack, dtmf="3", from_number=RESIDENT, from_name=HOSTILE_NAME, hold=25
            ) as call,
        ):
            card = page.locator("#op-call-card")
            card.wait_for(timeout=30_000)
            call_id = int(card.get_attribute("data-call-id") or 0)
            assert page.inner_text("#op-caller-number") == RESIDENT
            assert page.inner_text("#op-caller-name") == HOSTILE_NAME
            assert "heating" in page.inner_text("#op-intent")
            assert page.inner_text("#op-queue") == "heating"
            # The earlier call, linked to its detail page.
            previous = page.locator(f"#op-previous tr[data-call-id='{first['id']}'] a")
            assert previous.get_attribute("href") == f"/calls/{first['id']}"
            # The entry this call just closed is still shown, marked as closed by it.
            pop_entry = page.locator(f"#op-callbacks li[data-callback-id='{entry['id']}']")
            assert pop_entry.get_attribute("data-status") == "closed"
            assert page.evaluate("window.__noReload === true"), "the page reloaded"
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "operator-screen-pop.png"), full_page=True)

            # The disposition form follows the call being talked.
            page.wait_for_selector(f"#op-disposition[data-call-id='{call_id}']", timeout=5_000)
            page.select_option("#op-category", "request_registered")
            page.fill("#op-note", "Radiator <b>leaks</b> in flat 12")
            page.check("#op-callout")
            page.click("#op-disposition-save")
            page.wait_for_selector("#op-disposition-msg:has-text('Saved')", timeout=10_000)
            result = call.join()
        assert result.answered, result.detail
        # Over: the screen-pop goes, still without a reload.
        page.wait_for_selector("#op-no-call", timeout=20_000)
        assert page.evaluate("window.__noReload === true")

        saved = api.get(f"/api/calls/{call_id}").json()
        assert saved["caller_number"] == RESIDENT
        assert saved["disposition"]["category"] == "request_registered"
        assert saved["disposition"]["note"] == "Radiator <b>leaks</b> in flat 12"
        assert saved["disposition"]["callout_created"] is True
        assert saved["disposition"]["operator"] == login

        # Log out of the queues and back in from the page.
        page.click("#op-logout")
        page.wait_for_selector("#op-agent .agent-state[data-logged-in='no']", timeout=20_000)
        page.click("#op-login")
        page.wait_for_selector("#op-agent .agent-state[data-logged-in='yes']", timeout=20_000)
    finally:
        api.close()
        # Session-wide stack: leave no extra heating operator to answer other tests' calls.
        run_hotline("operators", "disable", login)
    assert browser_page.dialogs == [], "caller data ran as script"
    assert not [e for e in browser_page.console_errors if "Content Security Policy" in e]
