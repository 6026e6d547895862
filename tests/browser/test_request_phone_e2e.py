"""Service requests on the phone, end to end on the real Asterisk (issue 14).

A resident calls about heating (SIPp, the carrier); an operator's baresip answers in the
heating queue, and while the call is live the operator creates a request from the screen-pop's
API (the form prefilled from the call: category from the intent; the form itself in a browser:
test_operator_request_browser.py). A dispatcher assigns it; the crew, in a real Chromium on a
phone-sized screen, takes it on the way, works and marks it done on /crew. The "is it fixed?"
call is then placed by the router's dialer code (one round run
here, with an AMI link of its own: the router's own loop is off in the test stack, as virtual
hold's is, so that other tests' done requests ring nobody), through [request-feedback-out] and
the carrier trunk to the resident's phone (SIPp UAS), which presses 2: the request reopens,
with the history saying so, and the call log has the call - an outbound `feedback` call to the
resident, ended by the router on the Hangup, with the answer on its timeline and no callback
entry for it. The resident's next call hears the status before the menu (the
call's timeline and Asterisk's own log of the prompts), and reporting the same problem again
attaches to the request.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from call_router.ami_client import AmiLink
from call_router.db import Database
from call_router.request_feedback import ACTOR
from call_router.request_feedback_dialer import FeedbackDialer
from call_router.request_models import ServiceRequest
from call_router.service_requests import id_of
from call_router.settings import Settings
from hotline.sipua.answer import ResidentPhone
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import CallResult, place_call
from tests.browser.crew_steps import crew_phone, finish_job, start_job
from tests.browser.signin import role_account
from tests.conftest import add_operator, bearer_headers, finished_call, run_hotline, wait_for
from tests.integration.conftest import calls_of, entry_of

pytestmark = pytest.mark.asterisk

RESIDENT = "+79161230014"
ADDRESS = {"street": "Lenina St", "house": "14", "flat": "3"}


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json()


def _live_call(api: httpx.Client) -> dict[str, Any] | None:
    """The resident's call once an operator has it (still going)."""
    calls = calls_of(api, RESIDENT)
    return next((c for c in calls if c.get("operator") and not c["ended_at"]), None)


def _feedback_call(api: httpx.Client) -> dict[str, Any] | None:
    """The resident's "is it fixed?" call in the call log, once the router has ended it."""
    calls = calls_of(api, RESIDENT)
    return next((c for c in calls if c.get("direction") == "feedback" and c["ended_at"]), None)


def _only_this_request_due(db: Database, number: str) -> None:
    """Other tests' done requests in the shared stack are due too; their calls would ring
    this test's resident phone, so they are taken out of this round."""
    with db.session() as session:
        session.execute(
            update(ServiceRequest)
            .where(ServiceRequest.id != id_of(number), ServiceRequest.feedback_due_at.is_not(None))
            .values(feedback_due_at=None)
        )


def _feedback_round(stack: Settings, db: Database, number: str) -> list[bool]:
    _only_this_request_due(db, number)

    async def run() -> list[bool]:
        link = AmiLink(stack, role="originate")
        dialer = FeedbackDialer(stack, db, link)
        try:
            attempts = await dialer.round()
            assert [a.phone for a in attempts] == [RESIDENT], attempts
            return list(await asyncio.gather(*dialer.calls))
        finally:
            await link.close()

    # In a thread of its own: this module's Chromium (Playwright's sync API) holds the test
    # thread's event loop.
    with ThreadPoolExecutor(1) as worker:
        return worker.submit(asyncio.run, run()).result()


def test_request_from_a_call_to_the_feedback_call_and_back(
    stack: Settings, api: httpx.Client, chromium: Any
) -> None:
    db = Database(stack.db_url)
    operator = add_operator("Rita Requests", "heating")
    dispatcher = httpx.Client(
        base_url=stack.dashboard_url, timeout=10, headers=bearer_headers(db, "dispatcher")
    )

    # 1. The resident calls about heating; the operator answers; the request is made from the
    #    live call, as the screen-pop does (suggest, then create with the call's id).
    results: list[CallResult] = []
    with Softphone(stack, operator["sip_login"], operator["sip_password"]):
        caller = threading.Thread(
            target=lambda: results.append(
                place_call(stack, dtmf="3", from_number=RESIDENT, hold=25)
            )
        )
        caller.start()
        try:
            live = wait_for(lambda: _live_call(api), timeout=45, what="the operator's call")
            suggestion = _ok(api.get("/api/requests/suggest", params={"call_id": live["id"]}))
            assert suggestion["category"] == "heating"  # from the menu's intent
            created = _ok(
                api.post(
                    "/api/requests",
                    json={
                        "call_id": live["id"],
                        "category": suggestion["category"],
                        "description": "No heating in flat 3",
                        "caller_number": suggestion["caller_number"],
                        **ADDRESS,
                    },
                ),
                201,
            )
        finally:
            caller.join(timeout=90)
    assert results and results[0].answered, results
    number = created["number"]
    assert created["caller_number"] == RESIDENT and created["source"] == "phone"

    # 2. A dispatcher assigns it; 3. the crew, on its phone, goes, works and reports it done.
    added = _ok(
        dispatcher.post("/api/crews", json={"name": "Heating crew 14", "categories": ["heating"]}),
        201,
    )
    _ok(dispatcher.post(f"/api/requests/{number}/assign", json={"crew_id": added["id"]}))
    crew_user = role_account("crew")
    run_hotline("crews", "link", str(added["id"]), crew_user[0])
    with crew_phone(chromium, stack, *crew_user) as page:
        finish_job(page, start_job(page, number), "Radiators bled, heating back on")
        page.wait_for_selector(f"article.job[data-number='{number}']", state="detached")
    assert _ok(api.get(f"/api/requests/{number}"))["state"] == "done"

    # 4. The automatic call: the resident answers and presses 2 ("not solved").
    with ResidentPhone(stack, keys=[(3.0, "2"), (15.0, "2")], timeout=90) as phone:
        assert _feedback_round(stack, db, number) == [True]
        answered = phone.wait()
    assert answered.invited and answered.remote_hangup, answered.detail
    reopened = _ok(api.get(f"/api/requests/{number}"))
    assert reopened["state"] == "new", reopened["history"][-3:]
    assert (reopened["feedback_score"], reopened["feedback_attempts"]) == (2, 1)
    last = reopened["history"][-1]
    assert (last["from_state"], last["to_state"], last["actor"]) == ("done", "new", ACTOR)
    # The call log has the call: to the resident, for the request's tenant (its call's), ended
    # by the router on the Hangup, the answer on its timeline; not a caller's, no callback.
    logged = wait_for(lambda: _feedback_call(api), timeout=30, what="the feedback call's row")
    assert (logged["caller_number"], logged["tenant"], logged["operator"]) == (
        RESIDENT, live["tenant"], None,
    )  # fmt: skip
    started, answered_at, ended = (
        datetime.fromisoformat(logged[f]) for f in ("started_at", "answered_at", "ended_at")
    )
    assert started <= answered_at <= ended, logged
    assert logged["outcome"] == "feedback_not_solved", logged
    timeline = _ok(api.get(f"/api/calls/{logged['id']}"))["events"]
    answers = [e["data"] for e in timeline if e["kind"] == "feedback_answer"]
    assert [(a["answer"], a["request"]) for a in answers] == [("not_solved", number)], timeline
    only = _ok(api.get("/api/calls", params={"direction": "feedback", "caller": RESIDENT}))
    assert [c["id"] for c in only] == [logged["id"]]
    assert entry_of(api, RESIDENT) is None

    # 5. The next call from the same number hears the status first.
    again = place_call(stack, from_number=RESIDENT, hold=20)
    assert again.answered, again.detail
    second = finished_call(api, RESIDENT)
    detail = _ok(api.get(f"/api/calls/{second['id']}"))
    status = [e["data"] for e in detail["events"] if e["kind"] == "request_status"]
    assert status and status[0]["requests"] == [number] and status[0]["states"] == ["new"]
    full = (stack.asterisk_dir / "log" / "full").read_text(errors="replace")
    played = [line for line in full.splitlines() if "Playing '" in line]
    # (The resident's 2 may come during the greeting of the feedback call, which it
    # interrupts: the question itself is not always played.)
    for prompt in (
        "feedback_intro",
        "feedback_reopened",
        "request_yours",
        "request_about_heating",
        "request_state_new",
        "request_talk",
    ):
        assert any(f"/{prompt}." in line for line in played), f"Asterisk never played {prompt}"

    # 6. The same problem reported again (from that call) attaches to the open request.
    duplicate = api.post(
        "/api/requests",
        json={"call_id": second["id"], "category": "heating", "caller_number": RESIDENT, **ADDRESS},
    )
    assert _ok(duplicate)["attached"] is True and duplicate.json()["number"] == number
    linked = _ok(api.get(f"/api/requests/{number}"))
    assert {live["id"], second["id"]} <= set(linked["calls"])
    dispatcher.close()
    db.dispose()
