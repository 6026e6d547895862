"""Pure parts of supervisors' call control (call_router/call_control.py)."""

from __future__ import annotations

import pytest

from call_router.call_control import (
    ControlError,
    channels_of,
    move_priority,
    spy_options,
)
from call_router.models import utcnow
from call_router.outcomes import BY_SUPERVISOR, CallFacts, summarize


def test_the_channels_of_one_call_and_which_leg_is_the_callers() -> None:
    replies = [
        {"Response": "Success", "EventList": "start"},
        {
            "Event": "CoreShowChannel",
            "Channel": "PJSIP/pstn-00000001",
            "Uniqueid": "1700.1",
            "Linkedid": "1700.1",
            "Application": "Queue",
            "BridgeId": "",
        },
        {
            "Event": "CoreShowChannel",
            "Channel": "PJSIP/1001-00000002",
            "Uniqueid": "1700.2",
            "Linkedid": "1700.1",
            "Application": "AppQueue",
            "BridgeId": "abc",
        },
        {"Event": "CoreShowChannel", "Channel": "PJSIP/pstn-9", "Uniqueid": "9", "Linkedid": "9"},
        {"Event": "CoreShowChannelsComplete"},
    ]
    caller, operator = channels_of(replies, "1700.1")
    assert caller.is_caller_leg and not caller.bridged and caller.application == "Queue"
    assert not operator.is_caller_leg and operator.bridged
    assert channels_of(replies, "nope") == []


@pytest.mark.parametrize(
    ("current", "expected"),
    [(None, 1), ("", 1), ("0", 1), ("1", 1), ("7", 7), ("junk", 1), ("-3", 1), ("5000", 999)],
)
def test_a_moved_caller_keeps_at_least_priority_one(current: str | None, expected: int) -> None:
    assert move_priority(current) == expected


def test_spy_options_per_mode_and_a_bad_mode_is_refused() -> None:
    assert spy_options("listen") == "qdES"
    assert spy_options("whisper") == "qdESw"
    assert spy_options("barge") == "qdESB"
    with pytest.raises(ControlError) as caught:
        spy_options("record")
    assert caught.value.status == 422


def test_a_call_a_supervisor_ended_says_so_in_hangup_by() -> None:
    now = utcnow()
    facts = CallFacts(started_at=now, ended_at=now, queue_joined_at=now, ended_by_supervisor=True)
    assert summarize(facts).hangup_by == BY_SUPERVISOR
    assert summarize(CallFacts(started_at=now, ended_at=now)).hangup_by != BY_SUPERVISOR
