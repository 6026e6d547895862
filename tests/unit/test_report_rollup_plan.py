"""The pure part of the report roll-ups (call_router.reports): which slots are closed, which part
of a range reads rolled-up slots and which is added up live, and how partial figures add up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from call_router.reports import (
    SETTLE_SLOTS,
    SLOT_SECONDS,
    add_counts,
    add_operator_totals,
    add_queue_totals,
    closed_before,
    day_runs,
    plan_range,
    runs,
    slot_of,
    slot_start,
    stale_age,
)
from call_router.service_figures import OperatorTotals, QueueTotals

NOW = datetime(2026, 11, 24, 10, 7, 35, tzinfo=UTC)


def at(hour: int, minute: int = 0, second: int = 0) -> datetime:
    return datetime(2026, 11, 24, hour, minute, second, tzinfo=UTC)


def test_slot_start_is_the_inverse_of_slot_of() -> None:
    slot = slot_of(NOW)
    assert slot_start(slot) == at(10, 0)
    assert slot_of(slot_start(slot)) == slot
    assert slot_of(slot_start(slot) - timedelta(microseconds=1)) == slot - 1


def test_slots_close_after_settling_and_when_their_calls_have_ended() -> None:
    assert closed_before(NOW, None) == slot_of(NOW) - SETTLE_SLOTS
    # A call still open keeps its slot, and every later one, open.
    assert closed_before(NOW, at(8, 59)) == slot_of(at(8, 45))
    assert closed_before(NOW, at(10, 5)) == slot_of(NOW) - SETTLE_SLOTS


def test_a_lost_call_closes_once_its_figures_cannot_change() -> None:
    assert stale_age(20, timedelta(hours=4)) == timedelta(hours=4)
    # A threshold longer than the stale age: the call must have waited past it.
    assert stale_age(5 * 3600, timedelta(hours=4)) == timedelta(seconds=5 * 3600 + 2 * SLOT_SECONDS)


def test_runs_split_consecutive_slots_into_bounded_chunks() -> None:
    assert runs([], 96) == []
    assert runs([5, 3, 4, 9, 10, 12], 96) == [(3, 6), (9, 11), (12, 13)]
    assert runs(range(0, 200), 96) == [(0, 96), (96, 192), (192, 200)]


def test_day_runs_never_cross_a_utc_day() -> None:
    assert day_runs([94, 95, 96, 97, 300], 96) == [(94, 96), (96, 98), (300, 301)]
    assert day_runs(range(96, 192), 96) == [(96, 192)]


def test_a_range_reads_covered_closed_slots_and_the_rest_live() -> None:
    since, until = at(0), at(12)
    closed = slot_of(at(9, 45))
    covered = set(range(slot_of(at(0)), closed)) - {slot_of(at(3, 15))}
    plan = plan_range(since, until, closed, covered)
    assert plan.rolled == (slot_of(at(0)), closed)
    assert plan.live == [(at(3, 15), at(3, 30)), (at(9, 45), at(12))]


def test_partial_slots_at_the_ends_are_live() -> None:
    since, until = at(0, 7, 3), at(5, 50)
    closed = slot_of(at(9))
    plan = plan_range(since, until, closed, range(slot_of(at(0)), closed))
    assert plan.rolled == (slot_of(at(0, 15)), slot_of(at(5, 45)))
    assert plan.live == [(since, at(0, 15)), (at(5, 45), until)]


def test_a_range_with_nothing_closed_is_all_live() -> None:
    plan = plan_range(at(10), at(11), slot_of(at(9, 45)))
    assert plan.rolled is None and plan.live == [(at(10), at(11))]
    assert plan_range(at(10), at(10), slot_of(at(11))).live == []


def test_uncovered_neighbours_of_the_open_part_merge_into_one_live_range() -> None:
    closed = slot_of(at(9))
    covered = set(range(slot_of(at(0)), slot_of(at(8, 30))))
    plan = plan_range(at(0), at(12), closed, covered)
    assert plan.live == [(at(8, 30), at(12))]


def test_partial_figures_add_up_to_sums_and_counts() -> None:
    assert add_counts({1: 2, 2: 1}, {2: 3, 3: 1}, {}) == {1: 2, 2: 4, 3: 1}
    intents: dict[str | None, int] = {None: 1, "water": 2}
    more: dict[str | None, int] = {None: 4}
    assert add_counts(intents, more) == {None: 5, "water": 2}
    a = QueueTotals("plumbing", 3, 2, 1, 1, 3, 40.0, 2, 100.0, 2)
    b = QueueTotals("plumbing", 1, 1, 0, 1, 1, 5.0, 1, 60.0, 1)
    c = QueueTotals("heating", 1, 0, 1, 0, 1, 0.0, 0, 0.0, 0)
    assert add_queue_totals([a, c], [b]) == [
        c,
        QueueTotals("plumbing", 4, 3, 1, 2, 4, 45.0, 3, 160.0, 3),
    ]
    anna = OperatorTotals("Anna", 2, 100.0, 2)
    assert add_operator_totals({"Anna": anna}, {"Anna": OperatorTotals("Anna", 1, 20.0, 0)}) == {
        "Anna": OperatorTotals("Anna", 3, 120.0, 2)
    }
