"""The wallboard's call-control buttons in a real browser against the real hotline (issue 18):
a supervisor pauses an operator with a reason, moves a waiting caller to another queue, ends a
call only after confirming, changes an operator's queues and penalties (a penalty out of range
is a clear message), tries to monitor without a phone of their own, unpauses and logs the
operator out; the audit page lists every one of these actions with who did it."""

from __future__ import annotations

from typing import Any

import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from tests.browser.conftest import ARTIFACTS, Account, BrowserPage
from tests.browser.signin import supervisor_api
from tests.browser.test_dashboard_browser import CallInBackground
from tests.conftest import add_operator, finished_call, run_hotline, wait_for

pytestmark = pytest.mark.asterisk

WAITING = "+74954448001"
TALKING = "+74954448002"


def _agent(api: Any, login: str) -> dict[str, Any]:
    (agent,) = [a for a in api.get("/api/agents").json() if a["login"] == login]
    return dict(agent)


def _open_call(api: Any, number: str) -> dict[str, Any] | None:
    calls = api.get("/api/calls", params={"caller": number}).json()
    return calls[0] if calls and not calls[0]["ended_at"] else None


def test_the_wallboards_control_buttons_act_and_the_audit_page_lists_them(
    stack: Settings, browser_page: BrowserPage, supervisor_account: Account
) -> None:
    page = browser_page.page
    heating = add_operator("Bruno Boardheat", "heating")
    coordinator = add_operator("Cora Boardcoord", "coordinator")
    login = heating["sip_login"]
    api = supervisor_api(stack)
    status = page.locator("#wb-control-status")
    row = page.locator(f"#wb-control-agents tr[data-login='{login}']")
    try:
        page.goto(f"{stack.dashboard_url}/wallboard?lang=en")
        row.wait_for(timeout=15_000)

        # Pause with a reason (an empty reason is refused in the page).
        row.locator(".control-pause").click()
        assert status.inner_text() == "Reason for the pause"
        row.locator("input[name='reason']").fill("team meeting")
        row.locator(".control-pause").click()
        page.wait_for_selector(
            f"#wb-control-agents tr[data-login='{login}'][data-paused='yes']", timeout=20_000
        )
        assert _agent(api, login)["pause_reason"] == "team meeting"

        with (
            Softphone(stack, login, heating["sip_password"]) as heating_phone,
            Softphone(stack, coordinator["sip_login"], coordinator["sip_password"], answer=False),
            CallInBackground(stack, dtmf="3", from_number=WAITING, hold=60) as waiting_call,
        ):
            call = wait_for(lambda: _open_call(api, WAITING), timeout=40, what="the caller")
            call_row = page.locator(f"#wb-control-calls tr[data-call-id='{call['id']}']")
            wait_for(
                lambda: call_row.count() and call_row.get_attribute("data-call-id"),
                timeout=30,
                what="the waiting call on the board",
            )
            wait_for(
                lambda: "heating" in call_row.inner_text(), timeout=30, what="the caller in heating"
            )
            # A waiting caller can be moved to a queue or to one logged-in operator's phone.
            to_cora = f"select[name='queue'] option[value='operator:{coordinator['sip_login']}']"
            wait_for(lambda: call_row.locator(to_cora).count(), what="Cora among the targets")
            assert "Cora Boardcoord" in call_row.locator(to_cora).inner_text()
            # Move to the coordinator queue.
            call_row.locator("select[name='queue']").select_option("coordinator")
            call_row.locator(".control-move").click()
            page.wait_for_selector("#wb-control-status:has-text('moved to queue coordinator')")
            moved = wait_for(
                lambda: [
                    e
                    for e in api.get(f"/api/calls/{call['id']}").json()["events"]
                    if e["kind"] == "moved"
                ],
                what="the move in the timeline",
            )
            assert moved[0]["data"]["by"] == supervisor_account.username
            assert heating_phone.calls_ringing() == heating_phone.calls_answered() == 0

            # End it: dismissing the confirmation ends nothing; accepting it does.
            call_row.locator(".control-hangup").click()
            assert browser_page.dialogs[-1].startswith("confirm: End this call")
            assert _open_call(api, WAITING) is not None
            page.evaluate("window.confirm = (q) => { window.__asked = q; return true; }")
            call_row.locator(".control-hangup").click()
            page.wait_for_selector("#wb-control-status:has-text('hung up')", timeout=20_000)
            waiting_call.join()
            done = finished_call(api, WAITING)
            assert api.get(f"/api/calls/{done['id']}").json()["hangup_by"] == "supervisor"

            # Unpause: the heating operator answers the next caller; the supervisor, who has
            # no phone of their own, is told so when asking to listen.
            row.locator(".control-unpause").click()
            page.wait_for_selector(
                f"#wb-control-agents tr[data-login='{login}'][data-paused='no']", timeout=20_000
            )
            with CallInBackground(stack, dtmf="3", from_number=TALKING, hold=25):
                assert heating_phone.wait_for_event("CALL_ESTABLISHED", timeout=40)
                talking = wait_for(lambda: _open_call(api, TALKING), what="the talking call")
                monitor = page.locator(
                    f"#wb-control-calls tr[data-call-id='{talking['id']}'] .control-monitor"
                )
                monitor.wait_for(timeout=20_000)
                monitor.click()
                page.wait_for_selector(
                    "#wb-control-status.error:has-text('your account has no phone')",
                    timeout=20_000,
                )
                heating_phone.hangup()

        # Queues and penalties: out of range is a clear message, nothing changes.
        spec = row.locator("input[name='queues']")
        spec.fill("heating:500")
        row.locator(".control-queues").click()
        page.wait_for_selector("#wb-control-status.error:has-text('0..100')", timeout=20_000)
        assert [(q["queue"], q["penalty"]) for q in _agent(api, login)["queues"]] == [
            ("heating", 0)
        ]
        spec.fill("heating:5")
        row.locator(".control-queues").click()
        wait_for(
            lambda: (
                [(q["queue"], q["penalty"]) for q in _agent(api, login)["queues"]]
                == [("heating", 5)]
            ),
            what="the new penalty in Asterisk",
        )

        # Log out (confirmed by the overridden confirm above).
        row.locator(".control-logout").click()
        page.wait_for_selector(
            f"#wb-control-agents tr[data-login='{login}'][data-logged-in='no']",
            timeout=20_000,
        )
        assert _agent(api, login)["logged_in"] is False
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "wallboard-control.png"), full_page=True)

        # The audit page lists every action, newest first, with who did it.
        page.goto(f"{stack.dashboard_url}/supervision/audit?lang=en")
        for action in ("pause", "move", "hangup", "unpause", "monitor", "queues", "logout"):
            assert page.locator(f"#control-audit tr[data-action='{action}']").count(), action
        text = page.inner_text("#control-audit")
        assert supervisor_account.username in text
        refused = page.locator("#control-audit tr[data-action='queues'][data-result='refused']")
        assert "heating:500" in refused.first.inner_text()
    finally:
        api.close()
        run_hotline("operators", "disable", login)
        run_hotline("operators", "disable", coordinator["sip_login"])
    assert not [e for e in browser_page.console_errors if "Content Security Policy" in e]
