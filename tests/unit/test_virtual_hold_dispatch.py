"""The virtual-hold dispatcher's reading of QueueStatus: who is free, when a wrap-up ends, and
which callers still wait live (pure functions of the AMI replies)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from call_router.agent_membership import Membership
from call_router.virtual_hold_dispatch import free_operators, live_callers, wrapup_ends

NOW = 1_800_000_000.0


def member(login: str, *, last_call: int = 0, status: int = 1, **kw: object) -> Membership:
    fields: dict[str, object] = {
        "queue": "lift",
        "interface": f"PJSIP/{login}",
        "name": login,
        "penalty": 0,
        "paused": False,
        "reason": "",
        "status": status,
        "in_call": False,
        "dynamic": True,
        "last_call": last_call,
        "wrapup": 10,
    }
    fields.update(kw)
    return Membership(**fields)  # type: ignore[arg-type]


def test_an_operator_in_the_last_seconds_of_wrapup_counts_as_free_only_within_the_grace() -> None:
    members = [
        member("1001"),  # idle for long
        member("1002", last_call=int(NOW) - 6),  # 4 s of wrap-up left
        member("1003", last_call=int(NOW) - 1),  # 9 s left
        member("1004", paused=True),
        member("1005", status=2),  # in use
        member("1006", in_call=True),
    ]
    assert free_operators(members, NOW) == {"lift": ["1001"]}
    assert free_operators(members, NOW, grace=5) == {"lift": ["1001", "1002"]}
    assert wrapup_ends(members)["1002"] == NOW + 4


def test_live_callers_are_read_from_queue_entries_with_their_join_time_and_priority() -> None:
    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    replies = [
        {"Event": "QueueParams", "Queue": "lift"},
        {"Event": "QueueEntry", "Queue": "lift", "Wait": "42", "Priority": "0"},
        {"Event": "QueueEntry", "Queue": "duty", "Wait": "3", "Priority": "2"},
        {"Event": "QueueEntry", "Queue": "lift", "Wait": "junk"},
        {"Event": "QueueMember", "Queue": "lift", "Interface": "PJSIP/1001"},
    ]
    callers = live_callers(replies, now)
    assert [(c.queue, c.joined_at, c.priority) for c in callers] == [
        ("lift", now - timedelta(seconds=42), 0),
        ("duty", now - timedelta(seconds=3), 2),
        ("lift", now, 0),
    ]
