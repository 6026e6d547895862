"""The screen-pop's service-request form in a real browser, during a real call (issue 14).

A resident who reported a lift problem before calls about heating (SIPp); the operator's baresip
answers; on the operator page the form is prefilled from the call (category heating from the
menu's intent, the street and house of the resident's last request) and lists the open lift
request to attach to. The operator adds the flat and creates the request: the number to read
to the caller is shown, and the request carries the call.
"""

from __future__ import annotations

import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from tests.browser.conftest import BrowserPage
from tests.browser.signin import operator_account, sign_in, supervisor_api
from tests.browser.test_dashboard_browser import CallInBackground
from tests.conftest import add_operator, run_hotline

pytestmark = pytest.mark.asterisk

RESIDENT = "+74954440014"


def test_the_operator_makes_a_request_from_the_live_call_in_a_few_keystrokes(
    stack: Settings, browser_page: BrowserPage
) -> None:
    page = browser_page.page
    operator = add_operator("Olga Requests", "heating")
    login, password = operator["sip_login"], operator["sip_password"]
    api = supervisor_api(stack)
    try:
        earlier = api.post(
            "/api/requests",
            json={
                "category": "lift",
                "street": "Tverskaya St",
                "house": "21",
                "caller_number": RESIDENT,
            },
        )
        assert earlier.status_code == 201, earlier.text
        lift = earlier.json()["number"]
        sign_in(page, stack, *operator_account(stack, login))
        page.goto(f"{stack.dashboard_url}/operator?lang=en")
        page.wait_for_selector("#op-status:has-text('Live')", timeout=10_000)
        with (
            Softphone(stack, login, password),
            CallInBackground(stack, dtmf="3", from_number=RESIDENT, hold=25) as call,
        ):
            card = page.locator("#op-call-card")
            card.wait_for(timeout=30_000)
            call_id = int(card.get_attribute("data-call-id") or 0)
            page.wait_for_selector(f"#op-disposition[data-call-id='{call_id}']", timeout=10_000)
            # Prefilled: the open lift request to attach to, the last address, the intent.
            page.wait_for_selector(f"#op-req-open button:has-text('{lift}')", timeout=10_000)
            assert page.input_value("#op-req-category") == "heating"
            assert page.input_value("#op-req-street") == "Tverskaya St"
            assert page.input_value("#op-req-house") == "21"
            page.fill("#op-req-flat", "7")
            page.click("#op-req-create")
            shown = page.locator("#op-req-number")
            shown.wait_for(timeout=10_000)
            number = shown.inner_text()
            assert "read the number" in page.inner_text("#op-req-msg")
            call.join()
        made = api.get(f"/api/requests/{number}").json()
        assert (made["category"], made["flat"], made["source"]) == ("heating", "7", "phone")
        assert made["calls"] == [call_id]
        assert number != lift
    finally:
        api.close()
        # Session-wide stack: leave no extra heating operator to answer other tests' calls.
        run_hotline("operators", "disable", login)
    assert browser_page.dialogs == []
    assert not [e for e in browser_page.console_errors if "Content Security Policy" in e]
