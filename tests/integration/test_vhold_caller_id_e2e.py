"""Issue 10: the caller's number must not steer the dialplan's virtual-hold check.

[hotline-vhold] used to test `$["${CALLERID(num)}" = "" | ...]`: the carrier's caller ID went
into an Asterisk expression, so a number with quotes in it could rewrite the test (turn it
into "anonymous", or make it evaluate to a string that GotoIf reads as its own label). The
check now only ever sees the digits of the number (FILTER), whatever the carrier sends.
"""

from __future__ import annotations

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator
from tests.integration.test_agents_e2e import agents

pytestmark = pytest.mark.asterisk

# Closes the first string and ORs in a true one: the old test read the caller as anonymous
# and sent them back to the queue instead of keeping their place.
HOSTILE = '+74951110057" | "1'


def _seen_by_asterisk(stack: Settings, marker: str) -> list[str]:
    log = (stack.asterisk_dir / "log" / "full").read_text(errors="replace")
    return [line for line in log.splitlines() if "Virtual hold:" in line and marker in line]


def test_a_caller_id_with_quotes_cannot_rewrite_the_virtual_hold_check(
    stack: Settings, api: httpx.Client
) -> None:
    heating = add_operator("Vera Vhold", "heating")
    login = heating["sip_login"]
    # Logged in but paused: the caller waits in the queue, then presses 1.
    agents("pause", login, "--reason", "training")
    try:
        with Softphone(stack, login, heating["sip_password"]):
            result = place_call(
                stack, dtmf="3", from_number=HOSTILE, hold=40, dtmf_schedule=[(14.0, "1")]
            )
    finally:
        agents("logout", login)
    assert result.answered, result.detail
    seen = _seen_by_asterisk(stack, "4951110057")
    assert seen, "the call never reached [hotline-vhold]"
    # The request is taken: the hotline confirms and hangs up itself (an "anonymous" caller
    # would have been put back in the queue until the caller's own 40 s were up).
    assert result.remote_hangup, (result.detail, seen)
