"""Pure parts of supervisors' call control (call_router/call_control/)."""

from __future__ import annotations

import pytest

from call_router.call_control.base import ControlError, channels_of
from call_router.call_control.monitoring import (
    SpyModes,
    mode_of_options,
    monitor_sessions,
    spy_options,
)
from call_router.call_control.moving import move_priority
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


def _channel(name: str, **fields: str) -> dict[str, str]:
    return {"Event": "CoreShowChannel", "Channel": name, **fields}


SPY_CHANNELS = [
    {"Response": "Success", "EventList": "start"},
    _channel("PJSIP/pstn-00000001", Uniqueid="1.1", Linkedid="1.1", Application="Queue"),
    _channel("PJSIP/1002-00000002", Uniqueid="1.2", Linkedid="1.1", Application="AppQueue"),
    # The supervisor's phone, whispering to 1002.
    _channel(
        "PJSIP/1009-00000003",
        Uniqueid="2.1",
        Linkedid="2.1",
        Application="ChanSpy",
        ApplicationData="PJSIP/1002-00000002,qdESw",
        Context="hotline-spy",
        Duration="00:01:05",
    ),
    # The beep's Local channel and a ChanSpy someone runs elsewhere are not sessions of ours.
    _channel(
        "Local/beep@hotline-spy-beep-00000001;2",
        Application="ChanSpy",
        ApplicationData="PJSIP/1002-00000002,qwES",
        Context="hotline-spy",
    ),
    _channel("PJSIP/1010-00000009", Application="ChanSpy", Context="default"),
    {"Event": "CoreShowChannelsComplete"},
]


def test_monitor_sessions_are_the_supervisors_spy_channels_with_the_call_they_are_on() -> None:
    (session,) = monitor_sessions(SPY_CHANNELS)
    assert (session.supervisor, session.mode, session.operator) == ("1009", "whisper", "1002")
    assert session.linkedid == "1.1" and session.seconds == 65
    assert session.operator_channel == "PJSIP/1002-00000002"
    assert monitor_sessions(SPY_CHANNELS[:3]) == []


@pytest.mark.parametrize(
    ("options", "mode"),
    [("qdES", "listen"), ("qdESw", "whisper"), ("qdESB", "barge"), ("", "listen")],
)
def test_the_mode_a_chanspy_started_in(options: str, mode: str) -> None:
    assert mode_of_options(options) == mode
    if options:
        assert spy_options(mode) == options


def test_a_mode_switched_by_dtmf_on_the_supervisors_phone_replaces_the_one_it_started_in() -> None:
    modes = SpyModes()
    spy = "PJSIP/1009-00000003"
    digit = {"Event": "DTMFEnd", "Channel": spy, "Context": "hotline-spy", "Direction": "Received"}
    modes.on_dtmf({**digit, "Digit": "6"})
    (barge,) = monitor_sessions(SPY_CHANNELS, modes.current([spy]))
    assert barge.mode == "barge"
    modes.on_dtmf({**digit, "Digit": "4"})
    # Digits that switch nothing, sent ones, and other contexts' change nothing.
    modes.on_dtmf({**digit, "Digit": "9"})
    modes.on_dtmf({**digit, "Digit": "5", "Direction": "Sent"})
    modes.on_dtmf({**digit, "Digit": "5", "Context": "hotline-ivr"})
    assert modes.current([spy]) == {spy: "listen"}
    # A session that ended is forgotten.
    assert modes.current([]) == {}
    assert monitor_sessions(SPY_CHANNELS, modes.current([spy]))[0].mode == "whisper"
