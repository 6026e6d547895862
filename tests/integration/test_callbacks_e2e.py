"""Call-backs end to end on the real Asterisk, with real SIP phones on both legs.

The resident calls in with SIPp (the carrier), gives up in the queue, and lands on the
callback list. An operator claims the entry and clicks "call": Asterisk rings the operator's
baresip, and once it answers dials the resident through the `pstn` trunk, where a second
baresip (not registered, listening on pstn_host:pstn_port) is the resident's phone.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest

from call_router import callback_dialing, callbacks, click_to_call
from call_router.ami_client import AmiLink
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import Settings
from call_router.virtual_hold_dispatch import dispatch_virtual_hold
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, open_callback, wait_for
from tests.integration.conftest import calls_of, entry_of, missed_call

pytestmark = pytest.mark.asterisk

T = TypeVar("T")


class RouterLoop:
    """An event loop in a thread of its own holding one AMI link, as `hotline router` runs its
    virtual-hold dispatcher: the call-backs it places run on this loop after a pass ends."""

    def __init__(self, stack: Settings) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.link = AmiLink(stack, role="originate")

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(60)

    def close(self) -> None:
        self.run(self.link.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def detail(api: httpx.Client, callback_id: int) -> dict[str, Any]:
    response = api.get(f"/api/callbacks/{callback_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def daytime_rules(stack: Settings) -> callbacks.CallbackRules:
    """The stack's rules without quiet hours, whatever the clock says: these tests are about
    calling back, not about the night (quiet hours have their own clock-injected tests)."""
    rules = callbacks.CallbackRules.from_settings(stack)
    return callbacks.CallbackRules(
        deadlines=rules.deadlines,
        frost_months=rules.frost_months,
        quiet=type(rules.quiet).parse("00:00", "00:00", rules.zone),
        claim_timeout=600,
        max_attempts=3,
        retry_delays=(900,),
        country=rules.country,
    )


def call_ended(api: httpx.Client, callback_id: int) -> dict[str, Any]:
    def ended() -> dict[str, Any] | None:
        body = detail(api, callback_id)
        done = any(h["action"] == "call_ended" for h in body["history"])
        return body if done and body["active_call_id"] is None else None

    return wait_for(ended, timeout=60, what=f"callback {callback_id}'s call to end")


def test_operator_calls_the_resident_back_both_legs_ring_and_the_entry_is_resolved(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Cora Callback", "heating")
    login = operator["sip_login"]
    resident = "+74952220050"
    callback_id = missed_call(stack, api, operator, resident)

    assert (
        api.post(f"/api/callbacks/{callback_id}/claim", json={"operator": login}).status_code == 200
    )
    rival = api.post(f"/api/callbacks/{callback_id}/claim", json={"operator": "someone_else"})
    assert rival.status_code == 409 and rival.json()["detail"]["code"] == "claimed"

    with (
        Softphone(stack, login, operator["sip_password"]) as op_phone,
        Softphone(stack, resident, "", register=False, local_port=stack.pstn_port) as res_phone,
    ):
        started = api.post(f"/api/callbacks/{callback_id}/call", json={"operator": login})
        assert started.status_code == 202, started.text
        call_id = started.json()["call_id"]
        # No second dial of the same resident while this one runs.
        again = api.post(f"/api/callbacks/{callback_id}/call", json={"operator": login})
        assert again.status_code == 409 and again.json()["detail"]["code"] == "call_in_progress"
        # The operator's phone rings first and answers; only then the resident's phone rings.
        assert op_phone.wait_for_event("CALL_ESTABLISHED", timeout=20), op_phone.log[-2000:]
        assert res_phone.wait_for_event("CALL_ESTABLISHED", timeout=20), res_phone.log[-2000:]
        assert op_phone.calls_answered() == 1 and res_phone.calls_answered() == 1
        # The resident sees the hotline's number, not the operator's extension.
        assert stack.hotline_caller_id in res_phone.log
        time.sleep(1)  # a second of conversation
        res_phone.hangup()
        body = call_ended(api, callback_id)

    # The call log has the outbound call with both legs.
    call = api.get(f"/api/calls/{call_id}").json()
    assert call["outcome"] == callback_dialing.OUT_ANSWERED
    assert call["caller_number"] == resident
    assert call["operator"] == login
    assert call["answered_at"] is not None and call["ended_at"] is not None
    # Placed by the operator: a callback, not an inbound call they answered (migration 0020).
    assert call["direction"] == "callback"
    assert {c["direction"] for c in calls_of(api, resident) if c["id"] != call_id} == {"inbound"}
    kinds = {event["kind"]: event["data"] for event in call["events"]}
    assert kinds[callback_dialing.EVENT_OUTBOUND]["callback_id"] == callback_id
    assert kinds[callback_dialing.EVENT_DIAL_BEGIN]["operator_channel"].startswith(
        f"PJSIP/{login}-"
    )
    assert kinds[callback_dialing.EVENT_DIAL_BEGIN]["resident_channel"].startswith("PJSIP/pstn-")
    assert kinds[callback_dialing.EVENT_DIAL_END]["status"] == "ANSWER"
    # The resident answered: the entry waits for the operator's word, then is resolved.
    assert body["status"] == "open" and body["active_call_id"] is None
    done = api.post(
        f"/api/callbacks/{callback_id}/outcome",
        json={"outcome": "reached", "operator": login, "note": "radiators back on"},
    ).json()
    assert done["status"] == "closed"
    assert done["resolved_by"] == login and done["last_outcome"] == "reached"
    actions = [h["action"] for h in done["history"]]
    assert actions == ["created", "claimed", "call_started", "call_ended", "outcome"]
    assert entry_of(api, resident) is None


def test_resident_does_not_answer_so_a_retry_is_scheduled(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Nora Noanswer", "heating")
    login = operator["sip_login"]
    resident = "+74952220051"
    callback_id = missed_call(stack, api, operator, resident)
    db = Database(stack.db_url)
    fast = stack.model_copy(update={"callback_ring_timeout": 6})
    rules = daytime_rules(stack)
    try:
        assert (
            api.post(f"/api/callbacks/{callback_id}/claim", json={"operator": login}).status_code
            == 200
        )
        with (
            Softphone(stack, login, operator["sip_password"]) as op_phone,
            Softphone(
                fast, resident, "", answer=False, register=False, local_port=stack.pstn_port
            ) as res_phone,
        ):
            placed, result = click_to_call.call_back(fast, db, callback_id, login, rules=rules)
            assert result.ok, result.detail
            # Originate reports success on the operator's 200 OK; baresip's own event follows.
            assert op_phone.wait_for_event("CALL_ESTABLISHED", timeout=10), op_phone.log[-2000:]
            assert op_phone.calls_answered() == 1
            assert res_phone.wait_for_event("CALL_INCOMING", timeout=20)
            body = call_ended(api, callback_id)
            assert res_phone.calls_answered() == 0
    finally:
        db.dispose()
    call = api.get(f"/api/calls/{placed.call_id}").json()
    assert call["outcome"] == callback_dialing.OUT_NO_ANSWER
    assert body["status"] == "open"
    assert body["tries"] == 1 and body["last_outcome"] == "no_answer"
    assert body["claimed_by"] is None  # back on the list
    assert body["next_attempt_at"] is not None and body["next_attempt_at"] > call["ended_at"]
    outcome = [h for h in body["history"] if h["action"] == "outcome"]
    assert outcome and outcome[-1]["outcome"] == "no_answer"


def test_the_same_number_reaching_an_operator_closes_its_entry(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Otto Opener", "heating")
    resident = "+74952220052"
    callback_id = missed_call(stack, api, operator, resident)
    # The resident calls again, spelled the national way, and this time an operator answers.
    with Softphone(stack, operator["sip_login"], operator["sip_password"]):
        result = place_call(stack, dtmf="3", from_number="84952220052", hold=6)
        assert result.answered, result.detail
    closed = wait_for(
        lambda: (d := detail(api, callback_id))["status"] == "closed" and d,
        timeout=30,
        what="the entry to close",
    )
    assert closed["note"] == "reached_operator"
    assert [h["action"] for h in closed["history"]] == ["created", "closed"]


def test_virtual_hold_keeps_the_place_and_dials_only_when_an_operator_is_free(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Vera Vhold", "lift")
    login = operator["sip_login"]
    first, second = "+74952220060", "+74952220061"
    db = Database(stack.db_url)
    rules = daytime_rules(stack)
    now = utcnow()
    # `second` asked first (created first) but joined the queue later: `first` keeps the
    # earlier place and must be dialled first.
    late_id, early_id = (
        open_callback(
            db, number, reason="virtual_hold", queue="lift", now=now, placed_at=at, rules=rules
        )
        for number, at in (
            (second, now - timedelta(minutes=1)),
            (first, now - timedelta(minutes=5)),
        )
    )

    # As the router runs it: one loop, one AMI link for the QueueStatus and the call-backs.
    router = RouterLoop(stack)

    def dispatch() -> list[click_to_call.PlacedCall]:
        return router.run(dispatch_virtual_hold(stack, db, rules=rules, link=router.link))

    try:
        with (
            Softphone(stack, login, operator["sip_password"]) as op_phone,
            Softphone(stack, first, "", register=False, local_port=stack.pstn_port) as res_phone,
        ):
            # The operator is busy with another resident: nobody is released.
            busy = threading.Thread(
                target=place_call,
                args=(stack,),
                kwargs={"dtmf": "4", "hold": 8, "from_number": "+74952220069"},
            )
            busy.start()
            assert op_phone.wait_for_event("CALL_ESTABLISHED", timeout=30)
            assert dispatch() == []
            busy.join(timeout=60)
            # Free again (after the wrap-up time): exactly one held caller, the earliest place.
            placed = wait_for(dispatch, timeout=40, interval=1, what="a free lift operator")
            assert [p.callback_id for p in placed] == [early_id]
            assert res_phone.wait_for_event("CALL_ESTABLISHED", timeout=30), res_phone.log[-1500:]
            # The operator leg was answered first; its event may still be on its way to us.
            wait_for(lambda: op_phone.calls_answered() == 2, timeout=10, what="operator answered")
            # While that call runs, the one operator is taken: the other caller waits.
            assert dispatch() == []
            time.sleep(1)
            res_phone.hangup()
            body = call_ended(api, early_id)
    finally:
        router.close()
        db.dispose()
    assert body["history"][-1]["data"]["call_outcome"] == callback_dialing.OUT_ANSWERED
    waiting = detail(api, late_id)
    assert waiting["status"] == "open" and waiting["active_call_id"] is None
    assert [h["action"] for h in waiting["history"]] == ["created"]
