"""The wallboard's figures from plain values: the definitions written on the page
(call_router.service_figures on plain values; its SQL: tests/integration/test_reports_sql.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from call_router import reports
from call_router import service_figures as sf
from call_router import wallboard as wb
from call_router.outcomes import ABANDONED_IN_QUEUE, ANSWERED, QUEUE_TIMEOUT

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def answered(queue: str, wait: float, talk: float | None = 60, ended: bool = True) -> sf.QueueCall:
    return sf.QueueCall(queue, True, ended, wait, talk, ANSWERED if ended else None)


def abandoned(queue: str, wait: float) -> sf.QueueCall:
    return sf.QueueCall(queue, False, True, wait, None, ABANDONED_IN_QUEUE)


def waiting(queue: str, wait: float) -> sf.QueueCall:
    return sf.QueueCall(queue, False, False, wait)


def service_level(calls: list[sf.QueueCall], threshold: float) -> float | None:
    return reports.summary(sf.plain_totals(calls, threshold)).service_level


def queue_stats(calls: list[sf.QueueCall], **live: Any) -> list[sf.QueueStats]:
    totals = sf.plain_totals(calls, live.pop("threshold"))
    return reports.queue_figures(totals, live.pop("queues"), **live)


def test_service_level_counts_answered_within_threshold_over_decided_calls() -> None:
    calls = [
        answered("heating", 5),
        answered("heating", 20),  # exactly the threshold still counts as in time
        answered("heating", 21),
        abandoned("heating", 3),  # abandoned: offered and not answered in time
        waiting("heating", 10),  # undecided: not counted yet
        waiting("heating", 45),  # already a miss
    ]
    assert service_level(calls, 20) == pytest.approx(2 / 5)


def test_service_level_is_none_without_a_decided_call() -> None:
    assert service_level([], 20) is None
    assert service_level([waiting("lift", 3)], 20) is None


def test_queue_stats_per_queue_with_idle_queues_listed_first_in_order() -> None:
    calls = [
        answered("heating", 10, talk=100),
        answered("heating", 30, talk=200),
        answered("heating", 4, talk=None, ended=False),  # talking now: no handle time yet
        abandoned("heating", 50),
        sf.QueueCall("heating", False, True, 300, None, QUEUE_TIMEOUT),
        answered("surprise", 1, talk=10),
    ]
    stats = queue_stats(
        calls,
        queues=["plumbing", "heating"],
        waiting={"heating": 2},
        current_waits={"heating": [12.7, 40.2]},
        threshold=20,
    )

    assert [s.queue for s in stats] == ["plumbing", "heating", "surprise"]
    plumbing, heating, surprise = stats
    assert plumbing == sf.QueueStats("plumbing")
    assert (heating.offered, heating.answered, heating.abandoned) == (5, 3, 1)
    assert heating.waiting == 2 and heating.longest_wait_seconds == 40
    # Answered in time: 10 and 4 of 5 decided calls.
    assert heating.service_level == pytest.approx(2 / 5)
    assert heating.asa_seconds == pytest.approx((10 + 30 + 4) / 3)
    assert heating.aht_seconds == pytest.approx(150)
    assert surprise.service_level == 1.0 and surprise.aht_seconds == 10


def test_waiting_is_never_below_the_callers_seen_waiting() -> None:
    # Asterisk's count may lag the live calls (or be missing): show at least those we see.
    stats = queue_stats(
        [], queues=["lift"], waiting={}, current_waits={"lift": [3, 4, 5]}, threshold=20
    )
    assert stats[0].waiting == 3 and stats[0].longest_wait_seconds == 5


def test_alerts_for_service_level_breach_long_queue_and_overdue_callbacks() -> None:
    stats = [
        sf.QueueStats("heating", waiting=7, service_level=0.5),
        sf.QueueStats("lift", waiting=5, service_level=0.8),
        sf.QueueStats("meters", waiting=0, service_level=None),
    ]
    found = wb.alerts(stats, service_level_target=0.8, waiting_threshold=5, overdue_callbacks=3)
    assert found == [
        wb.Alert("service_level", "heating", 0.5, 0.8),
        wb.Alert("queue_waiting", "heating", 7, 5),
        wb.Alert("callbacks_overdue", None, 3, 0),
    ]


def test_no_alerts_when_all_is_well_or_threshold_disabled() -> None:
    stats = [sf.QueueStats("heating", waiting=50, service_level=0.95)]
    assert wb.alerts(stats, service_level_target=0.8, waiting_threshold=0) == []


def test_stage_and_time_in_stage_from_the_call_log() -> None:
    joined, answered_at = T0 + timedelta(seconds=10), T0 + timedelta(seconds=40)
    now = T0 + timedelta(seconds=100)

    assert wb.stage_of(None, None) == wb.STAGE_MENU
    assert wb.stage_of(None, joined) == wb.STAGE_QUEUE
    assert wb.stage_of(answered_at, joined) == wb.STAGE_TALKING
    assert wb.stage_started(wb.STAGE_MENU, T0, None, None) == T0
    assert wb.stage_started(wb.STAGE_QUEUE, T0, joined, None) == joined
    assert wb.stage_started(wb.STAGE_TALKING, T0, joined, answered_at) == answered_at
    # Redis says "talking" before the log has the answer time: fall back to the queue join.
    assert wb.stage_started(wb.STAGE_TALKING, T0, joined, None) == joined
    assert wb.seconds_between(answered_at, now) == 60
    # Another process's clock a little ahead: never a negative duration.
    assert wb.seconds_between(now + timedelta(seconds=2), now) == 0


def test_mean() -> None:
    assert sf.share(0, 0) is None
    assert sf.share(1 + 2 + 6, 3) == 3
