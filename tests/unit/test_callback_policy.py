"""The callback rules with plain values and an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from call_router import callback_policy as p

MSK = ZoneInfo("Europe/Moscow")
T0 = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
DEADLINES = {"emergency": 15, "heating": 60, "default": 120}


def test_emergencies_first_then_repeat_callers_then_oldest() -> None:
    normal_old = p.ListItem(1, p.Priority.NORMAL, T0 + timedelta(hours=2), T0)
    repeat = p.ListItem(
        2, p.Priority.REPEAT_CALLER, T0 + timedelta(hours=3), T0 + timedelta(hours=1)
    )
    emergency = p.ListItem(
        3, p.Priority.EMERGENCY, T0 + timedelta(hours=4), T0 + timedelta(hours=2)
    )
    normal_new = p.ListItem(4, p.Priority.NORMAL, T0 + timedelta(hours=3), T0 + timedelta(hours=1))
    order = p.ordered([normal_new, normal_old, repeat, emergency], T0 + timedelta(hours=3))
    assert [item.id for item in order] == [3, 2, 1, 4]


def test_an_entry_waiting_for_its_retry_time_goes_below_callable_ones() -> None:
    now = T0 + timedelta(hours=1)
    waiting = p.ListItem(
        1, p.Priority.EMERGENCY, T0, T0, next_attempt_at=now + timedelta(minutes=5)
    )
    callable_now = p.ListItem(2, p.Priority.NORMAL, T0 + timedelta(hours=2), T0)
    assert [i.id for i in p.ordered([waiting, callable_now], now)] == [2, 1]
    later = now + timedelta(minutes=6)
    assert [i.id for i in p.ordered([waiting, callable_now], later)] == [1, 2]


def test_category_flooding_lift_and_heating_in_frost_are_emergencies() -> None:
    assert p.category("flooding", "abandoned_in_queue", "plumbing", frost=False) == p.EMERGENCY
    assert p.category("lift_stuck", "no_agents", "lift", frost=False) == p.EMERGENCY
    assert p.category("heating", "abandoned_in_queue", "heating", frost=True) == p.EMERGENCY
    assert p.category("heating", "abandoned_in_queue", "heating", frost=False) == "heating"
    assert p.category(None, "voicemail", None, frost=False) == "voicemail"
    assert p.category(None, "queue_timeout", "plumbing", frost=False) == "water"
    assert p.category(None, "queue_timeout", None, frost=False) == p.DEFAULT_CATEGORY


def test_frost_is_the_local_month() -> None:
    months = [10, 11, 12, 1, 2, 3, 4]
    assert p.is_frost(datetime(2026, 1, 10, tzinfo=MSK), months)
    assert not p.is_frost(datetime(2026, 7, 10, tzinfo=MSK), months)


def test_priority_and_deadline_per_category() -> None:
    assert p.priority(p.EMERGENCY, 1) is p.Priority.EMERGENCY
    assert p.priority("water", 2) is p.Priority.REPEAT_CALLER
    assert p.priority("water", 1) is p.Priority.NORMAL
    assert p.due_at(T0, p.EMERGENCY, DEADLINES) == T0 + timedelta(minutes=15)
    assert p.due_at(T0, "heating", DEADLINES) == T0 + timedelta(minutes=60)
    assert p.due_at(T0, "unknown", DEADLINES) == T0 + timedelta(minutes=120)
    assert p.is_overdue(T0, T0 + timedelta(seconds=1))
    assert not p.is_overdue(T0, T0)
    assert not p.is_overdue(None, T0)


def test_retry_policy_uses_the_delays_then_gives_up() -> None:
    delays = (900, 3600)
    first = p.retry_after_failure(1, T0, delays=delays, max_attempts=3)
    assert first == p.RetryDecision(False, T0 + timedelta(seconds=900))
    second = p.retry_after_failure(2, T0, delays=delays, max_attempts=3)
    assert second.at == T0 + timedelta(seconds=3600)
    assert p.retry_after_failure(3, T0, delays=delays, max_attempts=3).give_up
    # More tries than delays: the last delay repeats.
    assert p.retry_after_failure(4, T0, delays=delays, max_attempts=9).at == T0 + timedelta(
        seconds=3600
    )


def test_quiet_hours_across_midnight_in_the_hotline_zone() -> None:
    quiet = p.QuietHours.parse("21:00", "09:00", MSK)
    # 17:59 UTC = 20:59 Moscow: still allowed; 18:00 UTC = 21:00 Moscow: quiet.
    assert not quiet.is_quiet(datetime(2026, 1, 15, 17, 59, tzinfo=UTC))
    assert quiet.is_quiet(datetime(2026, 1, 15, 18, 0, tzinfo=UTC))
    assert quiet.is_quiet(datetime(2026, 1, 16, 3, 0, tzinfo=MSK))
    assert not quiet.is_quiet(datetime(2026, 1, 16, 9, 0, tzinfo=MSK))
    # Late evening → next morning; after midnight → the same morning.
    evening = datetime(2026, 1, 15, 22, 30, tzinfo=MSK)
    assert quiet.next_allowed(evening) == datetime(2026, 1, 16, 9, 0, tzinfo=MSK)
    night = datetime(2026, 1, 16, 2, 0, tzinfo=MSK)
    assert quiet.next_allowed(night) == datetime(2026, 1, 16, 9, 0, tzinfo=MSK)
    day = datetime(2026, 1, 16, 12, 0, tzinfo=MSK)
    assert quiet.next_allowed(day) == day


def test_quiet_hours_same_day_window_and_dst() -> None:
    lunch = p.QuietHours.parse("13:00", "14:00", ZoneInfo("Europe/Berlin"))
    assert lunch.is_quiet(datetime(2026, 6, 1, 13, 30, tzinfo=ZoneInfo("Europe/Berlin")))
    assert not lunch.is_quiet(datetime(2026, 6, 1, 14, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    berlin = ZoneInfo("Europe/Berlin")
    night = p.QuietHours.parse("22:00", "08:00", berlin)
    # The night the clocks go forward (29 March 2026): 08:00 local is 06:00 UTC, not 07:00.
    before = datetime(2026, 3, 28, 23, 0, tzinfo=berlin)
    assert night.next_allowed(before).astimezone(UTC) == datetime(2026, 3, 29, 6, 0, tzinfo=UTC)


def test_may_call_now_with_an_injected_clock() -> None:
    quiet = p.QuietHours.parse("21:00", "09:00", MSK)
    night = datetime(2026, 1, 15, 23, 0, tzinfo=MSK)
    assert p.may_call_now(night, quiet, None) == (False, "quiet_hours")
    day = datetime(2026, 1, 15, 11, 0, tzinfo=MSK)
    assert p.may_call_now(day, quiet, day + timedelta(minutes=1)) == (False, "retry_not_due")
    assert p.may_call_now(day, quiet, day) == (True, None)


def test_one_caller_key_for_every_spelling_and_none_for_anonymous() -> None:
    spellings = ["+7 495 123-45-67", "8 495 1234567", "4951234567", "+74951234567"]
    assert {p.caller_key(s) for s in spellings} == {"+74951234567"}
    assert p.caller_key("anonymous") is None
    assert p.caller_key("") is None
    assert p.caller_key(None) is None


def test_virtual_hold_releases_no_more_than_free_operators_in_original_order() -> None:
    held = [
        p.HeldCallback(1, "heating", T0 + timedelta(minutes=3)),
        p.HeldCallback(2, "heating", T0 + timedelta(minutes=1)),
        p.HeldCallback(3, "heating", T0 + timedelta(minutes=2)),
        p.HeldCallback(4, "lift", T0),
    ]
    released = p.release_virtual_hold(held, {"heating": 2, "lift": 0})
    assert [h.id for h in released] == [2, 3]
    # One heating callback already dialling takes one of the two free operators.
    assert [h.id for h in p.release_virtual_hold(held, {"heating": 2}, {"heating": 1})] == [2]
    assert p.release_virtual_hold(held, {}) == []


def test_a_held_caller_who_joined_before_every_live_caller_takes_the_next_free_operator() -> None:
    held = [p.HeldCallback(7, "lift", T0)]
    later = [p.LiveCaller("lift", T0 + timedelta(seconds=40))]
    assert [h.id for h in p.release_virtual_hold(held, {"lift": 1}, live=later)] == [7]
    # Live callers of another queue do not stand in this line.
    other = [p.LiveCaller("heating", T0 - timedelta(minutes=5))]
    assert [h.id for h in p.release_virtual_hold(held, {"lift": 1}, live=other)] == [7]


def test_live_callers_ahead_in_the_line_take_the_free_operators_first() -> None:
    held = [p.HeldCallback(7, "lift", T0), p.HeldCallback(8, "lift", T0 + timedelta(minutes=2))]
    earlier = p.LiveCaller("lift", T0 - timedelta(seconds=30))
    between = p.LiveCaller("lift", T0 + timedelta(minutes=1))
    line = [earlier, between]
    # One free operator: the live caller who joined first is served by the queue.
    assert p.release_virtual_hold(held, {"lift": 1}, live=line) == []
    # Two: the earliest live one and then held 7; held 8 stands behind the later live one.
    assert [h.id for h in p.release_virtual_hold(held, {"lift": 2}, live=line)] == [7]
    # Four: everyone in the line, so both held callers (never more than free minus live ahead).
    assert [h.id for h in p.release_virtual_hold(held, {"lift": 4}, live=line)] == [7, 8]
    assert [h.id for h in p.release_virtual_hold(held, {"lift": 3}, live=line)] == [7]


def test_a_live_caller_raised_by_the_dialplan_stands_before_every_held_caller() -> None:
    held = [p.HeldCallback(7, "duty", T0)]
    emergency = p.LiveCaller("duty", T0 + timedelta(minutes=3), priority=2)
    assert p.release_virtual_hold(held, {"duty": 1}, live=[emergency]) == []
    assert [h.id for h in p.release_virtual_hold(held, {"duty": 2}, live=[emergency])] == [7]


def test_held_callers_being_dialled_and_no_free_operator_release_nobody() -> None:
    held = [p.HeldCallback(7, "lift", T0)]
    assert p.release_virtual_hold(held, {"lift": 0}) == []
    assert p.release_virtual_hold(held, {"lift": 1}, {"lift": 1}) == []
    # A live caller who joined in the same second as the held one stands behind it.
    same = p.LiveCaller("lift", T0)
    assert [h.id for h in p.release_virtual_hold(held, {"lift": 1}, live=[same])] == [7]
