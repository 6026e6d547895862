"""The Erlang C plan checked by a discrete-event simulation (simpy, bench/staffing/simulate.py):
without abandonment the simulated queue matches the formula; with callers who give up the plan
still meets its target (Erlang C errs on the safe side)."""

from __future__ import annotations

import pytest

from bench.staffing.simulate import simulate
from call_router import erlang

CALLS, INTERVAL, HANDLE, WITHIN = 100, 1800, 180, 20
TARGET = erlang.Target(service_level=0.8, answer_seconds=WITHIN, max_occupancy=1.0)


def test_simulated_queue_matches_erlang_c_when_nobody_gives_up() -> None:
    plan = erlang.agents_needed(CALLS, HANDLE, INTERVAL, TARGET)
    outcome = simulate(
        calls=CALLS, interval_seconds=INTERVAL, handle_seconds=HANDLE, agents=plan.agents,
        within=WITHIN, patience_seconds=None, hours=200, seed=7,
    )  # fmt: skip
    assert outcome.callers > 30_000 and outcome.abandoned == 0
    assert outcome.service_level == pytest.approx(plan.service_level, abs=0.02)
    assert outcome.average_wait == pytest.approx(plan.average_wait, abs=2.0)


def test_plan_holds_when_callers_abandon() -> None:
    plan = erlang.agents_needed(CALLS, HANDLE, INTERVAL, TARGET)
    outcome = simulate(
        calls=CALLS, interval_seconds=INTERVAL, handle_seconds=HANDLE, agents=plan.agents,
        within=WITHIN, patience_seconds=60, hours=200, seed=7,
    )  # fmt: skip
    assert 0 < outcome.abandon_rate < 0.05
    # Abandoned callers count against the service level, and it still beats the formula's.
    assert outcome.service_level >= plan.service_level >= TARGET.service_level
    # Two operators fewer: more callers give up and fewer are answered in time.
    short = simulate(
        calls=CALLS, interval_seconds=INTERVAL, handle_seconds=HANDLE, agents=plan.agents - 2,
        within=WITHIN, patience_seconds=60, hours=200, seed=7,
    )  # fmt: skip
    assert short.abandon_rate > outcome.abandon_rate
    assert short.service_level < outcome.service_level
