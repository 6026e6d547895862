"""Queue behaviour on the real Asterisk: auto-pause after N missed rings, overflow to the
coordinator, and virtual hold (press 1 while waiting → a callback entry that keeps the place).
"""

from __future__ import annotations

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, finished_call, wait_for
from tests.integration.test_agents_e2e import agent, agents

pytestmark = pytest.mark.asterisk


def test_unanswered_specialist_is_auto_paused_and_the_caller_overflows_to_the_coordinator(
    stack: Settings, api: httpx.Client
) -> None:
    assert stack.autopause_after_missed_rings == 2
    meters = add_operator("Misha Meters", "meters")
    coordinator = add_operator("Kira Coordinator", "coordinator")
    caller = "+74951110051"
    # Misha's phone rings and is never picked up; Kira answers at once.
    with (
        Softphone(stack, meters["sip_login"], meters["sip_password"], answer=False),
        Softphone(stack, coordinator["sip_login"], coordinator["sip_password"]) as kira,
    ):
        wait_for(lambda: agent(api, coordinator["sip_login"])["state"] == "free", what="Kira")
        wait_for(lambda: agent(api, meters["sip_login"])["state"] == "free", what="Misha")
        # queue_timeout (60 s in the test stack) in meters, then the coordinator.
        result = place_call(stack, dtmf="5", from_number=caller, hold=stack.queue_timeout + 20)
        assert result.answered, result.detail
        call = finished_call(api, caller)
        assert kira.calls_answered() == 1

    misha = agent(api, meters["sip_login"])
    assert misha["paused"] is True
    assert misha["pause_reason"] == "auto: missed 2 rings"

    assert call["queue"] == "coordinator"
    assert call["outcome"] == "answered"
    assert call["operator"] == "Kira Coordinator"
    events = api.get(f"/api/calls/{call['id']}").json()["events"]
    kinds = [e["kind"] for e in events]
    joins = [e["data"]["queue"] for e in events if e["kind"] == "queue_join"]
    assert joins == ["meters", "coordinator"]
    assert {"status": "TIMEOUT"} in [e["data"] for e in events if e["kind"] == "queue_status"]
    misses = [e for e in events if e["kind"] == "ring_no_answer"]
    assert len(misses) == 2, kinds  # paused after the second: never rung a third time
    agents("logout", meters["sip_login"])
    agents("logout", coordinator["sip_login"])


def test_pressing_1_while_waiting_leaves_a_callback_that_keeps_the_place(
    stack: Settings, api: httpx.Client
) -> None:
    heating = add_operator("Gleb Heating", "heating")
    login = heating["sip_login"]
    # Logged in but paused: the caller joins the queue and waits, nobody is rung.
    agents("pause", login, "--reason", "training")
    caller = "+74951110052"
    with Softphone(stack, login, heating["sip_password"]):
        result = place_call(
            stack, dtmf="3", from_number=caller, hold=40, dtmf_schedule=[(14.0, "1")]
        )
    assert result.answered, result.detail
    # The hotline confirms and hangs up itself, long before the caller's 40 s.
    assert result.remote_hangup, result.detail
    call = finished_call(api, caller)
    assert call["outcome"] == "callback_requested"
    kinds = [e["kind"] for e in api.get(f"/api/calls/{call['id']}").json()["events"]]
    assert "callback_requested" in kinds and "queue_join" in kinds
    (entry,) = [c for c in api.get("/api/callbacks").json() if c["caller_number"] == caller]
    assert entry["reason"] == "virtual_hold"
    assert entry["queue"] == "heating"
    assert entry["status"] == "open"
    agents("logout", login)


def test_with_nobody_logged_in_the_caller_overflows_then_takes_the_callback_offer(
    stack: Settings, api: httpx.Client
) -> None:
    # Nobody reachable in plumbing or the coordinator queue (the default operator never
    # registers a phone): Queue() refuses at once (JOINEMPTY), the caller goes to the
    # coordinator, then hears "press 1 to be called back, or stay on the line for voicemail".
    caller = "+74951110053"
    result = place_call(
        stack,
        dtmf="1",
        from_number=caller,
        hold=45,
        dtmf_schedule=[(9.0, "1"), (12.0, "1"), (15.0, "1")],
    )
    assert result.answered, result.detail
    assert result.remote_hangup, result.detail
    call = finished_call(api, caller)
    assert call["outcome"] == "callback_requested"
    assert call["queue"] == "coordinator"
    events = api.get(f"/api/calls/{call['id']}").json()["events"]
    statuses = [e["data"]["status"] for e in events if e["kind"] == "queue_status"]
    assert statuses == ["JOINEMPTY", "JOINEMPTY"]
    (entry,) = [c for c in api.get("/api/callbacks").json() if c["caller_number"] == caller]
    assert entry["reason"] == "virtual_hold"


def test_ring_all_with_three_operators_is_one_answered_call_without_missed_rings(
    stack: Settings, api: httpx.Client
) -> None:
    # The coordinator queue rings everyone at once (strategy ringall). Two phones only ring,
    # the third answers: the two others must not count a missed ring nor be auto-paused.
    ops = [add_operator(f"{name} Ringall", "coordinator") for name in ("Olga", "Oleg", "Osip")]
    caller = "+74951119404"
    with (
        Softphone(stack, ops[0]["sip_login"], ops[0]["sip_password"], answer=False) as olga,
        Softphone(stack, ops[1]["sip_login"], ops[1]["sip_password"], answer=False) as oleg,
        Softphone(stack, ops[2]["sip_login"], ops[2]["sip_password"]) as osip,
    ):
        for op in ops:
            login = op["sip_login"]
            wait_for(lambda login=login: agent(api, login)["state"] == "free", what=login)
        result = place_call(stack, dtmf="0", from_number=caller, hold=12)
        assert result.answered, result.detail
        call = finished_call(api, caller)
        assert (osip.calls_answered(), olga.calls_answered(), oleg.calls_answered()) == (1, 0, 0)

    assert len(api.get("/api/calls", params={"caller": caller}).json()) == 1
    assert (call["outcome"], call["queue"], call["operator"]) == (
        "answered",
        "coordinator",
        "Osip Ringall",
    )
    events = api.get(f"/api/calls/{call['id']}").json()["events"]
    rung = {e["data"]["operator"] for e in events if e["kind"] == "ring"}
    assert rung == {"Olga Ringall", "Oleg Ringall", "Osip Ringall"}
    assert [e for e in events if e["kind"] == "ring_no_answer"] == []
    for op in ops[:2]:
        state = agent(api, op["sip_login"])
        assert state["paused"] is False, state
    for op in ops:
        agents("logout", op["sip_login"])
