"""Outcome, wait, talk and who-hung-up from plain facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from call_router import outcomes
from call_router.outcomes import CallFacts, summarize

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_answered_call_counts_wait_until_answer_and_talk_from_asterisk() -> None:
    facts = CallFacts(
        started_at=at(0), ended_at=at(100), queue_joined_at=at(10), answered_at=at(40),
        complete_reason="agent", talk_time=58,
    )  # fmt: skip
    assert summarize(facts) == outcomes.CallSummary("answered", 30, 58, "agent")


def test_talk_time_falls_back_to_answer_until_end() -> None:
    facts = CallFacts(
        started_at=at(0), ended_at=at(100), queue_joined_at=at(10), answered_at=at(40)
    )
    summary = summarize(facts)
    assert (summary.talk_seconds, summary.hangup_by) == (60, "caller")


def test_transfer_counts_as_the_operator_ending_their_part() -> None:
    facts = CallFacts(
        started_at=at(0), ended_at=at(9), answered_at=at(2), complete_reason="transfer"
    )
    assert summarize(facts).hangup_by == "agent"


def test_abandon_in_queue_waits_until_the_caller_left() -> None:
    facts = CallFacts(
        started_at=at(0), ended_at=at(61), queue_joined_at=at(5), queue_left_at=at(60),
        abandoned_in_queue=True,
    )  # fmt: skip
    assert summarize(facts) == outcomes.CallSummary("abandoned_in_queue", 55, None, "caller")


def test_in_queue_at_hangup_without_abandon_event_is_still_an_abandon() -> None:
    facts = CallFacts(started_at=at(0), ended_at=at(30), queue_joined_at=at(5))
    assert summarize(facts).outcome == "abandoned_in_queue"
    assert summarize(facts).wait_seconds == 25


def test_hangup_in_menu() -> None:
    summary = summarize(CallFacts(started_at=at(0), ended_at=at(8)))
    assert summary == outcomes.CallSummary("abandoned_in_menu", None, None, "caller")


@pytest.mark.parametrize(
    ("status", "outcome"),
    [("TIMEOUT", "queue_timeout"), ("FULL", "queue_full"), ("JOINEMPTY", "no_agents"),
     ("LEAVEEMPTY", "no_agents"), ("joinunavail", "no_agents")],
)  # fmt: skip
def test_queue_status_explains_system_ends(status: str, outcome: str) -> None:
    facts = CallFacts(
        started_at=at(0), ended_at=at(300), queue_joined_at=at(5), queue_status=status
    )
    summary = summarize(facts)
    assert (summary.outcome, summary.hangup_by) == (outcome, "system")
    assert summary.outcome in outcomes.MISSED_OUTCOMES


def test_voicemail_and_after_hours_win_over_queue_status() -> None:
    voicemail = CallFacts(
        started_at=at(0), ended_at=at(400), queue_joined_at=at(5), queue_status="TIMEOUT",
        voicemail=True,
    )  # fmt: skip
    assert (summarize(voicemail).outcome, summarize(voicemail).hangup_by) == ("voicemail", "caller")
    after_hours = CallFacts(started_at=at(0), ended_at=at(20), after_hours=True)
    assert (summarize(after_hours).outcome, summarize(after_hours).hangup_by) == (
        "after_hours",
        "system",
    )


def test_answer_beats_everything_and_reconcile_blames_the_system() -> None:
    facts = CallFacts(
        started_at=at(0), ended_at=at(50), queue_joined_at=at(1), answered_at=at(3),
        abandoned_in_queue=True, reconciled=True,
    )  # fmt: skip
    summary = summarize(facts)
    assert (summary.outcome, summary.hangup_by) == ("answered", "system")


def test_clock_skew_never_gives_negative_durations() -> None:
    facts = CallFacts(started_at=at(10), ended_at=at(5), queue_joined_at=at(10), answered_at=at(12))
    summary = summarize(facts)
    assert (summary.wait_seconds, summary.talk_seconds) == (2, 0)


@pytest.mark.parametrize(
    "stage",
    [
        {},  # in the menu
        {"queue_joined_at": at(10)},  # waiting
        {"queue_joined_at": at(10), "answered_at": at(20)},  # talking
    ],
)
def test_a_call_cut_by_asterisk_going_away_is_dropped_by_the_system(stage: dict) -> None:
    facts = CallFacts(started_at=at(0), ended_at=at(30), dropped=True, reconciled=True, **stage)
    summary = summarize(facts)
    assert (summary.outcome, summary.hangup_by) == (outcomes.DROPPED, "system")
    assert outcomes.DROPPED in outcomes.OUTCOMES
