"""Only the carrier is the carrier: the trunk is found by source address, never by name.

A stranger (SIPp on another loopback address, 127.0.0.3, not a configured carrier address)
sends the INVITE the carrier would send, claiming to be the trunk (`From: <sip:pstn@...>`) or
an operator (their login, no password): Asterisk refuses it before any dialplan runs, so no
call row is ever written and no menu (FastAGI) runs. The same INVITE from the carrier's address
(127.0.0.1) still reaches the hotline; operators on that same address keep working (the e2e
call tests).
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, finished_call

pytestmark = pytest.mark.asterisk

STRANGER = "127.0.0.3"


def _refused(stack: Settings, from_number: str) -> int | None:
    result = place_call(stack, from_number=from_number, hold=1, dtmf_delay=0, local_ip=STRANGER)
    assert not result.answered, f"a stranger's INVITE as {from_number!r} was answered"
    return result.sip_status


def test_a_stranger_claiming_to_be_the_trunk_or_an_operator_gets_nothing(
    stack: Settings, api: httpx.Client
) -> None:
    operator = add_operator("Olga Outsider-Check", "coordinator")
    since = datetime.now(UTC).isoformat()
    # No final answer at all (silence) would do too; a 2xx would not.
    assert _refused(stack, "pstn") in (None, 401, 403)
    assert _refused(stack, operator["sip_login"]) in (None, 401, 403)

    # The carrier's own address still gets through; its row is written after any row the
    # stranger's INVITEs could have caused, so once it is there those would be there too.
    carrier_caller = "+74951119001"
    result = place_call(stack, from_number=carrier_caller, hold=1, dtmf_delay=0)
    assert result.answered, result.detail
    finished_call(api, carrier_caller)

    calls = api.get("/api/calls", params={"since": since}).json()
    assert [call["caller_number"] for call in calls] == [carrier_caller]
