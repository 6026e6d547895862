from __future__ import annotations

from call_router.autopause import AutoPausePolicy, PauseDecision, pause_reason

OP = "PJSIP/1001"


def test_pauses_once_the_count_reaches_the_threshold() -> None:
    policy = AutoPausePolicy(threshold=3)
    assert policy.decide(OP, 1) is None
    assert policy.decide(OP, 2) is None
    assert policy.decide(OP, 3) == PauseDecision(OP, 3, "auto: missed 3 rings")


def test_threshold_one_pauses_on_the_first_miss_and_zero_never() -> None:
    assert AutoPausePolicy(threshold=1).decide(OP, 1) == PauseDecision(OP, 1, "auto: missed 1 ring")
    never = AutoPausePolicy(threshold=0)
    assert not never.enabled
    assert all(never.decide(OP, missed) is None for missed in range(10))


def test_a_paused_operator_is_not_paused_again() -> None:
    assert AutoPausePolicy(threshold=2).decide(OP, 5, paused=True) is None


def test_reason_text() -> None:
    assert pause_reason(2) == "auto: missed 2 rings"
