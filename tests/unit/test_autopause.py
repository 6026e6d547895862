from __future__ import annotations

from call_router.autopause import AutoPausePolicy, PauseDecision, pause_reason

OP = "PJSIP/1001"


def test_pauses_after_the_configured_number_of_consecutive_misses() -> None:
    policy = AutoPausePolicy(threshold=3)
    assert policy.missed_ring(OP) is None
    assert policy.missed_ring(OP) is None
    assert policy.missed_ring(OP) == PauseDecision(OP, 3, "auto: missed 3 rings")
    # The count starts again after the pause.
    assert policy.missed(OP) == 0


def test_an_answered_call_resets_the_count() -> None:
    policy = AutoPausePolicy(threshold=2)
    assert policy.missed_ring(OP) is None
    policy.answered(OP)
    assert policy.missed_ring(OP) is None
    assert policy.missed_ring(OP) is not None


def test_counts_are_per_operator() -> None:
    policy = AutoPausePolicy(threshold=2)
    assert policy.missed_ring(OP) is None
    assert policy.missed_ring("PJSIP/1002") is None
    assert policy.missed(OP) == 1
    assert policy.missed("PJSIP/1002") == 1


def test_threshold_one_pauses_on_the_first_miss_and_zero_never() -> None:
    assert AutoPausePolicy(threshold=1).missed_ring(OP) == PauseDecision(
        OP, 1, "auto: missed 1 ring"
    )
    never = AutoPausePolicy(threshold=0)
    assert all(never.missed_ring(OP) is None for _ in range(10))


def test_a_paused_operator_is_not_counted_and_a_pause_change_resets() -> None:
    policy = AutoPausePolicy(threshold=2)
    assert policy.missed_ring(OP, paused=True) is None
    assert policy.missed(OP) == 0
    assert policy.missed_ring(OP) is None
    policy.pause_changed(OP)
    assert policy.missed_ring(OP) is None
    assert policy.missed(OP) == 1


def test_reason_text() -> None:
    assert pause_reason(2) == "auto: missed 2 rings"
