"""What the FastAGI leaves on a routed caller's channel, read back from the real Asterisk.

The route's channel variables (call id, intent, menu choice, queue) go to Asterisk in one
`EXEC MSet` instead of one SET VARIABLE each; this checks Asterisk's own view of them on a
caller who waits in the queue (its operator paused), as a later dialplan step would read them.
"""

from __future__ import annotations

import httpx
import pytest

from call_router import channel_vars
from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from tests.conftest import add_operator, wait_for
from tests.integration.test_agents_e2e import agent, agents
from tests.integration.test_asterisk_sandbox import login
from tests.integration.test_call_control_e2e import Caller, waiting

pytestmark = pytest.mark.asterisk


def test_the_routed_callers_channel_holds_the_menus_decision(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Vera Variables", "heating")
    caller = "+74951119091"
    agents("pause", operator["sip_login"], "--reason", "meeting")
    ami, reply = login(stack, role="supervise")
    try:
        assert reply.get("Response") == "Success", reply
        with Softphone(stack, operator["sip_login"], operator["sip_password"]):
            wait_for(lambda: agent(api, operator["sip_login"])["paused"], what="paused")
            waiter = Caller(stack, caller, dtmf="3", hold=40)
            call = wait_for(waiting(api, caller, "heating"), timeout=40, what="the caller queued")
            assert ami.action("CoreShowChannels").get("Response") == "Success"
            channel = ami.wait_event(
                lambda e: (
                    e.get("Event") == "CoreShowChannel"
                    and e.get("CallerIDNum", "").endswith(caller[-7:])
                ),
                what="the caller's channel",
            )["Channel"]

            def value(name: str) -> str | None:
                got = ami.action("Getvar", Channel=channel, Variable=name)
                assert got.get("Response") == "Success", got
                return got.get("Value")

            seen = {
                name: value(name)
                for name in (
                    channel_vars.CALL_ID,
                    channel_vars.INTENT,
                    channel_vars.MENU_CHOICE,
                    channel_vars.QUEUE,
                )
            }
            assert ami.action("Hangup", Channel=channel).get("Response") == "Success"
            waiter.join(timeout=60)
    finally:
        ami.close()
        agents("logout", operator["sip_login"])
    assert seen == {
        channel_vars.CALL_ID: str(call["id"]),
        channel_vars.INTENT: "heating",
        channel_vars.MENU_CHOICE: "3",
        channel_vars.QUEUE: "heating",
    }
