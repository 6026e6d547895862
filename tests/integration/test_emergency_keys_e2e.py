"""Every emergency by key through the real Asterisk, day and night (issue 16), and an
emergency caller answered before a non-emergency caller who waited longer.

SIPp callers from the carrier trunk press the keys: by day 7 then 1-4 (the shipped calendar is
open around the clock), at night 1 then 1-4 (the FastAGI server on a copy of ivr_flows/ whose
calendar is closed every day, as test_after_hours_e2e.py does). A gas smell is put through to
a phone answering as the gas service on the trunk.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from call_router.settings import Settings
from hotline.sipua.softphone import Softphone
from hotline.sipua.testcall import place_call
from tests.conftest import add_operator, finished_call, wait_for
from tests.integration.test_after_hours_e2e import closed_hotline, transfer_outcome
from tests.integration.test_agents_e2e import agent, agents
from tests.integration.test_call_control_e2e import Caller, events_of, waiting
from tests.integration.test_flows_e2e import menu_result

pytestmark = pytest.mark.asterisk

# The night calendar (every day closed), shared with the after-hours tests.
night = closed_hotline
SECOND_KEY_AT = 4.0  # seconds after the first key: while the emergency menu plays


def _emergency_call(stack: Settings, api: httpx.Client, caller: str, keys: str) -> dict[str, Any]:
    first, second = keys
    result = place_call(
        stack, dtmf=first, from_number=caller, hold=14, dtmf_schedule=[(SECOND_KEY_AT, second)]
    )
    assert result.answered, result.detail
    return menu_result(api, finished_call(api, caller))


@pytest.fixture
def gas_service(stack: Settings) -> Iterator[Softphone]:
    with Softphone(
        stack, stack.gas_emergency_number, "", register=False, local_port=stack.pstn_port
    ) as phone:
        yield phone


DAY = [
    ("72", "plumbing", "flooding"),
    ("73", "lift", "lift_stuck"),
    ("74", "heating", "no_heating"),
]
NIGHT = [("12", "flooding"), ("13", "lift_stuck"), ("14", "no_heating")]


def test_by_day_each_emergency_by_key_reaches_its_team(stack: Settings, api: httpx.Client) -> None:
    for i, (keys, queue, intent) in enumerate(DAY):
        decided = _emergency_call(stack, api, f"+7495666020{i}", keys)
        assert (decided["queue"], decided["intent"], decided["choice"]) == (queue, intent, keys[1])


def _gas_by_key(
    stack: Settings, api: httpx.Client, gas: Softphone, caller: str, first_key: str
) -> None:
    """The emergency menu's key 1 (after `first_key`): put through to the gas service."""
    result = place_call(
        stack, dtmf=first_key, from_number=caller, hold=18, dtmf_schedule=[(SECOND_KEY_AT, "1")]
    )
    assert result.answered, result.detail
    assert gas.calls_answered() >= 1, gas.log[-2000:]
    seen = transfer_outcome(api, finished_call(api, caller))
    assert seen["transfer"]["status"] == "ANSWER"
    assert seen["transfer"]["number"] == stack.gas_emergency_number


def test_a_gas_smell_by_key_by_day_is_put_through_to_the_gas_service(
    stack: Settings, api: httpx.Client, gas_service: Softphone
) -> None:
    _gas_by_key(stack, api, gas_service, "+74956660210", "7")


def test_an_emergency_is_answered_before_a_caller_who_waited_longer(
    stack: Settings, api: httpx.Client
) -> None:
    """The lift operator is paused; a caller about a lift (key 4) waits; then someone stuck in
    a lift (7, 3) joins after them, at the head of the queue. The operator comes back: the
    emergency is answered first, the earlier caller still waits."""
    operator = add_operator("Liza Lift", "lift")
    login = operator["sip_login"]
    agents("pause", login, "--reason", "meeting")
    earlier, stuck = "+74956660401", "+74956660402"
    with Softphone(stack, login, operator["sip_password"]) as phone:
        wait_for(lambda: agent(api, login)["paused"], what="the paused lift operator")
        first = Caller(stack, earlier, "4", hold=60)
        waited = wait_for(waiting(api, earlier, "lift"), timeout=30, what="the lift caller")
        second = _EmergencyCaller(stack, stuck, "73", hold=60)
        urgent = wait_for(waiting(api, stuck, "lift"), timeout=40, what="the stuck caller")
        joins = [e for e in events_of(api, urgent["id"]) if e["kind"] == "queue_join"]
        assert joins[-1]["data"]["position"] == 1  # ahead of the caller already waiting
        agents("unpause", login)
        assert phone.wait_for_event("CALL_ESTABLISHED", timeout=30), phone.log[-2000:]

        def connected(call_id: int) -> bool:
            return any(e["kind"] == "agent_connect" for e in events_of(api, call_id))

        wait_for(lambda: connected(urgent["id"]), timeout=20, what="the emergency answered")
        assert not connected(waited["id"])  # the earlier caller is still waiting
        phone.hangup()
        first.join(timeout=120)
        second.join(timeout=120)
    agents("logout", login)


class _EmergencyCaller(Caller):
    """A SIPp caller pressing an emergency's two keys, the second while the emergency menu
    plays."""

    def __init__(self, stack: Settings, number: str, keys: str, hold: float) -> None:
        self._keys = keys
        super().__init__(stack, number, keys[0], hold)

    def _run(self, stack: Settings, number: str, dtmf: str, hold: float) -> None:
        self.result = place_call(
            stack,
            dtmf=dtmf,
            from_number=number,
            hold=hold,
            dtmf_schedule=[(SECOND_KEY_AT, self._keys[1])],
        )


# --- at night: the module-scoped closed calendar, last in this file --------------------------


def test_at_night_each_emergency_by_key_reaches_the_duty_team(
    stack: Settings, api: httpx.Client, night: Path
) -> None:
    for i, (keys, intent) in enumerate(NIGHT):
        decided = _emergency_call(stack, api, f"+7495666030{i}", keys)
        assert (decided["queue"], decided["intent"], decided["choice"]) == ("duty", intent, keys[1])


def test_a_gas_smell_by_key_at_night_is_put_through_to_the_gas_service(
    stack: Settings, api: httpx.Client, night: Path, gas_service: Softphone
) -> None:
    _gas_by_key(stack, api, gas_service, "+74956660310", "1")
