"""A resident's call end to end: real Asterisk, real SIP on both sides, the real call log.

The caller is SIPp posing as the carrier trunk (`pstn`), sending RFC 2833 DTMF; the operator
is baresip registered with the roster's generated credentials.
"""

from __future__ import annotations

import httpx
import pytest

from call_router.settings import Settings
from hotline import services
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, finished_call

pytestmark = pytest.mark.asterisk


def test_dtmf_2_reaches_an_electricity_operator_and_is_logged(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Elena Electric", "electricity")
    caller = "+74951110002"
    with Softphone(stack, operator["sip_login"], operator["sip_password"]) as phone:
        result = place_call(stack, dtmf="2", from_number=caller, from_name="Ivan", hold=9)
        assert result.answered, result.detail
        call = finished_call(api, caller)
        assert phone.calls_answered() >= 1

    assert call["queue"] == "electricity"
    assert call["menu_choice"] == "2"
    assert call["outcome"] == "answered"
    assert operator["sip_login"] in (call["operator"] or "") or call["operator"] == operator["name"]
    assert call["caller_name"] == "Ivan"
    assert call["started_at"] < call["answered_at"] < call["ended_at"]

    # The dashboard page shows it too.
    page = api.get("/").text
    assert caller in page


def test_caller_who_hangs_up_in_the_queue_gets_a_callback(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Harry Heating", "heating")
    caller = "+74951110003"
    # The operator's phone rings but nobody picks up: the caller waits, then gives up.
    with Softphone(stack, operator["sip_login"], operator["sip_password"], answer=False):
        result = place_call(stack, dtmf="3", from_number=caller, hold=10)
        assert result.answered, result.detail
        call = finished_call(api, caller)

    assert call["queue"] == "heating"
    assert call["outcome"] == "abandoned_in_queue"
    callbacks = api.get("/api/callbacks").json()
    entries = [cb for cb in callbacks if cb["caller_number"] == caller]
    assert len(entries) == 1
    assert entries[0]["status"] == "open"
    assert entries[0]["attempts"] == 1


def test_with_the_fastagi_server_down_the_call_still_reaches_the_coordinator(
    stack: Settings, api: httpx.Client
) -> None:
    caller = "+74951110004"
    assert services.stop_service(stack, "agi")
    try:
        result = place_call(stack, dtmf="2", from_number=caller, hold=5)
        assert result.answered, result.detail
        call = finished_call(api, caller)
    finally:
        services.start_service(stack, "agi")
        services.wait_ready(stack, "agi")
    # The dialplan's fail-safe ignores the key press: no menu ran.
    assert call["queue"] == "coordinator"
    assert call["menu_choice"] is None
    assert call["ended_at"] is not None
    # The call log says why: nothing listened on the AGI port.
    events = api.get(f"/api/calls/{call['id']}").json()["events"]
    (failed,) = [e for e in events if e["kind"] == "agi_failed"]
    assert failed["data"] == {"status": "FAILURE", "queue": "coordinator"}
