"""The Erlang C plan checked by a discrete-event simulation (simpy, bench/staffing/simulate.py):
without abandonment the simulated queue matches the formula; with callers who give up the plan
still meets its target (Erlang C errs on the safe side). And the forecast itself: a week
forecast from a synthetic log with a known Monday-morning peak, its quarter hours simulated in a
row (operators coming and going, the queue carried over), meets its target with and without
abandonment, and fails it with fewer operators."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bench.staffing.simulate import PlanSlot, forecast_days, simulate, simulate_plan
from call_router import erlang
from call_router.staffing import CallSample, ForecastRow, Window, forecast

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


# Calls per quarter hour on Mondays 09:00-10:30 (slots 36..41): a peak and its ramps.
MONDAY_PEAK = {36: 10, 37: 30, 38: 60, 39: 60, 40: 40, 41: 20}
FORECAST_TARGET = erlang.Target(service_level=0.8, answer_seconds=WITHIN, max_occupancy=0.85)


def monday_forecast() -> list[ForecastRow]:
    """Four weeks of the peak (handle times ~ exponential, 180 s mean) → next Monday's plan."""
    window = Window.ending(datetime(2026, 11, 30, 6, tzinfo=UTC), weeks=4, zone=UTC)
    rng = random.Random(3)
    calls = []
    for week in range(4):
        monday = window.start + timedelta(weeks=week)
        for slot, count in MONDAY_PEAK.items():
            for i in range(count):
                at = monday + timedelta(seconds=slot * 900 + (i + 0.5) * 900 / count)
                calls.append(CallSample(at, rng.expovariate(1 / HANDLE)))
    rows = forecast(window, calls, [], FORECAST_TARGET)
    return [row for row in rows if row.day == window.today]


def test_the_forecast_holds_its_target_through_the_quarter_hours_with_abandonment() -> None:
    rows = monday_forecast()
    assert {row.slot: row.calls for row in rows if row.calls} == MONDAY_PEAK
    plan = forecast_days({"rows": [row.as_dict() for row in rows]})
    (slots,) = plan.values()
    assert [s.agents for s in slots] == [row.needed for row in rows]
    steady = simulate_plan(slots, within=WITHIN, patience_seconds=None, days=100, seed=5)
    assert steady.abandoned == 0 and steady.callers > 20_000
    # The ramps (a queue built up at 09:30 still there at 09:45) do not break the plan.
    assert steady.service_level >= FORECAST_TARGET.service_level
    giving_up = simulate_plan(slots, within=WITHIN, patience_seconds=60, days=100, seed=5)
    assert giving_up.service_level >= steady.service_level
    assert 0 < giving_up.abandon_rate < 0.06
    # Two operators fewer in every staffed quarter hour: the target is missed and more give up.
    short = [PlanSlot(s.calls, s.handle_seconds, max(1, s.agents - 2) if s.agents else 0)
             for s in slots]  # fmt: skip
    shorted = simulate_plan(short, within=WITHIN, patience_seconds=60, days=100, seed=5)
    assert shorted.abandon_rate > 2 * giving_up.abandon_rate
    shorted_steady = simulate_plan(short, within=WITHIN, patience_seconds=None, days=100, seed=5)
    assert shorted_steady.service_level < FORECAST_TARGET.service_level
