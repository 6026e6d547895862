"""A caller moved to another queue keeps a priority (issue 18): through the real Asterisk,
a caller waiting in heating and moved to the coordinator is served there before a caller who
was already waiting in the coordinator queue, not sent to the back of it.
"""

from __future__ import annotations

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from tests.conftest import add_operator, finished_call, wait_for
from tests.integration.test_agents_e2e import agent, agents
from tests.integration.test_call_control_e2e import Caller, events_of, waiting

pytestmark = pytest.mark.asterisk


def _connected(api: httpx.Client, call_id: int) -> bool:
    return any(e["kind"] == "agent_connect" for e in events_of(api, call_id))


def test_a_caller_moved_to_another_queue_is_answered_before_those_already_waiting_there(
    stack: Settings, api: httpx.Client
) -> None:
    """The coordinator operator is paused; a caller waits in the coordinator queue. A caller
    waiting in heating (its operator paused too) is moved there by the supervisor and joins
    ahead of them. The coordinator comes back: the moved caller is answered first, the one
    already waiting next (both answered: nobody is left for the callback list)."""
    coordinator = add_operator("Mira Move", "coordinator")
    heating = add_operator("Hedda Heat", "heating")
    logins = coordinator["sip_login"], heating["sip_login"]
    for login in logins:
        agents("pause", login, "--reason", "meeting")
    waiter, moved = "+74951119081", "+74951119082"
    try:
        with (
            Softphone(stack, coordinator["sip_login"], coordinator["sip_password"]) as phone,
            Softphone(stack, heating["sip_login"], heating["sip_password"]) as heating_phone,
        ):
            wait_for(lambda: all(agent(api, x)["paused"] for x in logins), what="both paused")
            # Held long enough to be answered after the moved caller (never an abandon).
            first = Caller(stack, waiter, dtmf="0", hold=120)
            waited = wait_for(
                waiting(api, waiter, "coordinator"), timeout=40, what="the caller waiting"
            )
            second = Caller(stack, moved, dtmf="3", hold=120)
            call = wait_for(waiting(api, moved, "heating"), timeout=40, what="the heating caller")
            answer = api.post(f"/api/calls/{call['id']}/move", json={"queue": "coordinator"})
            assert answer.status_code == 200, answer.text
            wait_for(waiting(api, moved, "coordinator"), timeout=20, what="the caller moved")
            joins = [
                e
                for e in events_of(api, call["id"])
                if e["kind"] == "queue_join" and e["data"].get("queue") == "coordinator"
            ]
            assert joins[-1]["data"]["position"] == 1, joins  # ahead of the caller waiting

            agents("unpause", coordinator["sip_login"])
            assert phone.wait_for_event("CALL_ESTABLISHED", timeout=30), phone.log[-2000:]
            wait_for(lambda: _connected(api, call["id"]), timeout=20, what="the moved answered")
            assert not _connected(api, waited["id"])  # the earlier caller still waits
            phone.hangup()
            # After the wrap-up the caller who waited is answered too.
            assert phone.wait_for_event("CALL_ESTABLISHED", count=2, timeout=45), phone.log[-2000:]
            wait_for(lambda: _connected(api, waited["id"]), timeout=20, what="the waiter answered")
            phone.hangup()
            first.join(timeout=120)
            second.join(timeout=120)
            assert heating_phone.calls_ringing() == 0
    finally:
        for login in logins:
            agents("logout", login)
    name = coordinator["name"]
    done = {number: finished_call(api, number) for number in (waiter, moved)}
    assert [(d["outcome"], d["operator"], d["queue"]) for d in done.values()] == [
        ("answered", name, "coordinator")
    ] * 2, done
