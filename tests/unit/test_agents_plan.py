"""The agent service's pure parts: membership plan, operator state, queue counts."""

from __future__ import annotations

from dataclasses import replace

from call_router.agent_membership import (
    DesiredAgent,
    Membership,
    agent_state,
    login_of,
    membership_from_event,
    parse_members,
    plan,
    queue_counts,
)

ANNA = DesiredAgent("1001", "Anna", {"plumbing": 0, "coordinator": 5})


def member(queue: str, interface: str = "PJSIP/1001", **kw: object) -> Membership:
    base = Membership(
        queue=queue,
        interface=interface,
        name="Anna",
        penalty=0,
        paused=False,
        reason="",
        status=1,
        in_call=False,
        dynamic=True,
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_a_logged_in_operator_missing_from_asterisk_is_added_with_penalty_and_state() -> None:
    actions = plan([ANNA], [])
    assert actions == [
        {
            "Action": "QueueAdd",
            "Queue": "coordinator",
            "Interface": "PJSIP/1001",
            "Penalty": "5",
            "Paused": "false",
            "MemberName": "Anna",
            "StateInterface": "PJSIP/1001",
        },
        {
            "Action": "QueueAdd",
            "Queue": "plumbing",
            "Interface": "PJSIP/1001",
            "Penalty": "0",
            "Paused": "false",
            "MemberName": "Anna",
            "StateInterface": "PJSIP/1001",
        },
    ]


def test_nothing_to_do_when_asterisk_matches() -> None:
    assert plan([ANNA], [member("plumbing"), member("coordinator", penalty=5)]) == []


def test_logged_out_operator_is_removed_but_static_members_are_left_alone() -> None:
    actual = [member("plumbing"), member("lift", interface="PJSIP/2002", dynamic=False)]
    assert plan([], actual, managed={"PJSIP/1001"}) == [
        {"Action": "QueueRemove", "Queue": "plumbing", "Interface": "PJSIP/1001"}
    ]


def test_pause_with_reason_penalty_change_and_paused_add() -> None:
    paused = replace(ANNA, paused=True, reason="lunch")
    actions = plan([paused], [member("plumbing", penalty=3)])
    assert {
        "Action": "QueuePenalty",
        "Queue": "plumbing",
        "Interface": "PJSIP/1001",
        "Penalty": "0",
    } in actions
    assert {
        "Action": "QueuePause",
        "Queue": "plumbing",
        "Interface": "PJSIP/1001",
        "Paused": "true",
        "Reason": "lunch",
    } in actions
    add = next(a for a in actions if a["Action"] == "QueueAdd")
    assert add["Queue"] == "coordinator" and add["Paused"] == "true"
    # The reason is set right after the paused add.
    assert actions[actions.index(add) + 1]["Reason"] == "lunch"


def test_unpause_and_reason_change() -> None:
    assert plan(
        [ANNA], [member("plumbing", paused=True, reason="x"), member("coordinator", penalty=5)]
    ) == [
        {"Action": "QueuePause", "Queue": "plumbing", "Interface": "PJSIP/1001", "Paused": "false"}
    ]
    relabel = plan(
        [replace(ANNA, queues={"plumbing": 0}, paused=True, reason="training")],
        [member("plumbing", paused=True, reason="lunch")],
    )
    assert relabel[0]["Reason"] == "training"


def test_operator_state() -> None:
    now = 1_000_000.0
    assert agent_state([], logged_in=True, now=now) == "logged_out"
    assert agent_state([member("plumbing")], logged_in=True, now=now) == "free"
    assert agent_state([member("plumbing", status=5)], logged_in=True, now=now) == "offline"
    assert agent_state([member("plumbing", status=6)], logged_in=True, now=now) == "ringing"
    assert agent_state([member("plumbing", in_call=True)], logged_in=True, now=now) == "busy"
    assert agent_state([member("plumbing", paused=True)], logged_in=True, now=now) == "paused"
    # On a call while paused (the pause came mid-call): busy wins, the wallboard shows the call.
    assert (
        agent_state([member("plumbing", paused=True, status=2)], logged_in=True, now=now) == "busy"
    )
    wrap = member("plumbing", last_call=int(now) - 3, wrapup=10)
    assert agent_state([wrap], logged_in=True, now=now) == "wrapup"
    assert agent_state([replace(wrap, last_call=int(now) - 30)], logged_in=True, now=now) == "free"


def test_queue_counts() -> None:
    members = [
        member("plumbing"),
        member("plumbing", interface="PJSIP/1002", paused=True),
        member("plumbing", interface="PJSIP/1003", status=2),
        member("plumbing", interface="PJSIP/1004", status=5),
        member("lift"),
    ]
    counts = queue_counts(members, ["plumbing", "lift", "heating"], now=0)
    assert counts["plumbing"] == {"free": 1, "busy": 1, "paused": 1, "offline": 1}
    assert counts["lift"] == {"free": 1, "busy": 0, "paused": 0, "offline": 0}
    assert counts["heating"] == {"free": 0, "busy": 0, "paused": 0, "offline": 0}


def test_parse_queue_status_reply_and_member_events() -> None:
    replies = [
        {"Response": "Success", "EventList": "start"},
        {"Event": "QueueParams", "Queue": "plumbing"},
        {
            "Event": "QueueMember",
            "Queue": "plumbing",
            "Name": "Anna",
            "MemberName": "Anna",
            "Location": "PJSIP/1001",
            "StateInterface": "PJSIP/1001",
            "Membership": "dynamic",
            "Penalty": "2",
            "Paused": "1",
            "PausedReason": "lunch",
            "Status": "1",
            "InCall": "0",
            "LastCall": "0",
            "Wrapuptime": "10",
        },
        {"Event": "QueueStatusComplete"},
    ]
    (m,) = parse_members(replies)
    assert (m.queue, m.interface, m.penalty, m.paused, m.reason, m.dynamic) == (
        "plumbing",
        "PJSIP/1001",
        2,
        True,
        "lunch",
        True,
    )
    event = {
        "Event": "QueueMemberStatus",
        "Queue": "lift",
        "Interface": "PJSIP/7",
        "Membership": "static",
        "Status": "2",
        "InCall": "1",
    }
    parsed = membership_from_event(event)
    assert parsed is not None and not parsed.dynamic and parsed.in_call


def test_login_of() -> None:
    assert login_of("PJSIP/1001") == "1001"
    assert login_of("Local/1001@x") is None
    assert login_of("PJSIP/") is None
