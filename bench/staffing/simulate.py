"""Discrete-event check of the staffing forecast (simpy): does a plan hold when callers give up?

Erlang C assumes callers wait for ever, and each quarter hour in its steady state. Real callers
hang up (those who stay then wait less), and a real day changes from one quarter hour to the
next (a queue built up at 09:00 is still there at 09:15). Two checks:

- one interval's plan, simulated for many hours - Poisson arrivals, exponential handle times,
  `agents` operators, exponential patience - reporting the service level (answered within the
  target, over everyone who called), the average wait of those answered and the share who
  abandoned, beside Erlang C's figures:

    .venv/bin/python bench/staffing/simulate.py --calls 100 --interval 1800 --handle 180 \
        --within 20 --patience 60 --hours 200

  Without --agents it simulates the plan `call_router.erlang.agents_needed` makes for
  --target-sl (default 80/20).

- the forecast itself: the coming week of `hotline staffing --json` (each quarter hour's
  expected calls, handle time and operators needed), operators coming and going at the
  quarter hours as planned, the queue carried over, each day simulated --days times:

    hotline staffing --target-sl 80/20 --json > plan.json
    .venv/bin/python bench/staffing/simulate.py --forecast plan.json --patience 60 --days 50

tests/unit/test_staffing_simulation.py runs both small.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Generator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import simpy

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from call_router import erlang  # noqa: E402


@dataclass(frozen=True)
class Outcome:
    callers: int
    answered: int
    abandoned: int
    answered_within: int
    total_wait_answered: float

    @property
    def service_level(self) -> float:
        """Answered within the target, over every caller (abandoned ones count against)."""
        return self.answered_within / self.callers if self.callers else 1.0

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.callers if self.callers else 0.0

    @property
    def average_wait(self) -> float:
        return self.total_wait_answered / self.answered if self.answered else 0.0


class _Tally:
    """The callers counted so far: how many came, were answered (within the target) or gave
    up, and the total wait of those answered."""

    def __init__(self, within: float) -> None:
        self.within = within
        self.callers = self.answered = self.abandoned = self.answered_within = 0
        self.total_wait_answered = 0.0

    def arrived(self) -> None:
        self.callers += 1

    def settled(self, answered: bool, waited: float) -> None:
        """A caller answered after `waited` s, or (not `answered`) one who gave up."""
        if not answered:
            self.abandoned += 1
            return
        self.answered += 1
        self.answered_within += waited <= self.within
        self.total_wait_answered += waited

    def outcome(self) -> Outcome:
        return Outcome(
            self.callers,
            self.answered,
            self.abandoned,
            self.answered_within,
            self.total_wait_answered,
        )


def _wait_for_answer(
    env: simpy.Environment,
    request: simpy.Event,
    patience_seconds: float | None,
    rng: random.Random,
) -> Generator[Any, Any, bool]:
    """A caller waits for an operator (`request`): True once one answers, False when the
    caller gave up first (exponential patience with this mean; None: never gives up)."""
    if patience_seconds is None:
        yield request
        return True
    gives_up = env.timeout(rng.expovariate(1 / patience_seconds))
    result = yield request | gives_up
    return request in result


def simulate(
    *,
    calls: float,
    interval_seconds: float,
    handle_seconds: float,
    agents: int,
    within: float,
    patience_seconds: float | None,
    hours: float,
    seed: int = 1,
) -> Outcome:
    """M/M/N(+M) queue: Poisson arrivals at `calls` per interval, exponential handle time,
    exponential patience with this mean (None: callers never give up), for `hours`."""
    rng = random.Random(seed)
    env = simpy.Environment()
    operators = simpy.Resource(env, capacity=agents)
    rate = calls / interval_seconds
    tally = _Tally(within)
    warmup = 3600.0  # an empty centre at t=0 is not the steady state Erlang C describes

    def caller() -> Generator[Any, Any, None]:
        arrived = env.now
        counted = arrived >= warmup
        with operators.request() as request:
            answered = yield from _wait_for_answer(env, request, patience_seconds, rng)
            if counted:
                tally.arrived()
                tally.settled(answered, env.now - arrived)
            if answered:
                yield env.timeout(rng.expovariate(1 / handle_seconds))

    def arrivals() -> Generator[Any, Any, None]:
        while True:
            yield env.timeout(rng.expovariate(rate))
            env.process(caller())

    env.process(arrivals())
    env.run(until=warmup + hours * 3600)
    return tally.outcome()


@dataclass(frozen=True)
class PlanSlot:
    """One quarter hour of a forecast: expected calls, mean handle time, operators planned."""

    calls: float
    handle_seconds: float
    agents: int


def simulate_plan(
    slots: Sequence[PlanSlot],
    *,
    within: float,
    patience_seconds: float | None,
    days: int,
    seed: int = 1,
    slot_seconds: float = 900.0,
) -> Outcome:
    """The forecast's quarter hours in a row, `days` times over (each run starts empty, as a
    day does at midnight): Poisson arrivals at each slot's rate, exponential handle times of
    its mean, its operators on duty (one who goes off duty at a quarter hour first finishes
    the call in hand), exponential patience (None: callers never give up). Callers still
    waiting when the last slot ends count as not answered in time."""
    rng = random.Random(seed)
    tally = _Tally(within)
    for _ in range(days):
        env = simpy.Environment()
        operators = simpy.Container(env, init=slots[0].agents if slots else 0, capacity=10**9)

        def caller(
            env: simpy.Environment, operators: simpy.Container, handle: float
        ) -> Generator[Any, Any, None]:
            arrived = env.now
            tally.arrived()
            request = operators.get(1)
            answered = yield from _wait_for_answer(env, request, patience_seconds, rng)
            tally.settled(answered, env.now - arrived)
            if not answered:
                request.cancel()
                return
            yield env.timeout(rng.expovariate(1 / handle))
            yield operators.put(1)

        def leaves(operators: simpy.Container) -> Generator[Any, Any, None]:
            yield operators.get(1)  # the next operator free goes off duty

        def day(env: simpy.Environment, operators: simpy.Container) -> Generator[Any, Any, None]:
            on_duty = slots[0].agents
            for slot in slots:
                if slot.agents > on_duty:
                    yield operators.put(slot.agents - on_duty)
                for _ in range(on_duty - slot.agents):
                    env.process(leaves(operators))
                on_duty = slot.agents
                end = env.now + slot_seconds
                rate = slot.calls / slot_seconds
                while rate > 0:
                    gap = rng.expovariate(rate)
                    if env.now + gap >= end:
                        break
                    yield env.timeout(gap)
                    env.process(caller(env, operators, slot.handle_seconds))
                yield env.timeout(end - env.now)

        env.process(day(env, operators))
        env.run(until=len(slots) * slot_seconds)
    return tally.outcome()


def forecast_days(plan: dict[str, Any]) -> dict[str, list[PlanSlot]]:
    """`hotline staffing --json` → each day's quarter hours, in order."""
    days: dict[str, list[PlanSlot]] = {}
    for row in sorted(plan["rows"], key=lambda r: (r["day"], r["time"])):
        slot = PlanSlot(float(row["calls"]), float(row["handle_seconds"]), int(row["needed"]))
        days.setdefault(row["day"], []).append(slot)
    return days


def _figures(outcome: Outcome) -> dict[str, Any]:
    return {
        **asdict(outcome),
        "service_level": round(outcome.service_level, 4),
        "average_wait": round(outcome.average_wait, 2),
        "abandon_rate": round(outcome.abandon_rate, 4),
    }


def check_forecast(path: Path, patience: float | None, days: int, seed: int) -> None:
    plan = json.loads(path.read_text())
    within = float(plan["target"]["answer_seconds"])
    report = {"target": plan["target"], "patience": patience, "days": {}}
    for day, slots in forecast_days(plan).items():
        outcome = simulate_plan(
            slots, within=within, patience_seconds=patience, days=days, seed=seed
        )
        report["days"][day] = _figures(outcome)
    print(json.dumps(report))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--calls", type=float, default=100, help="calls per interval")
    parser.add_argument("--interval", type=float, default=1800, help="interval, seconds")
    parser.add_argument("--handle", type=float, default=180, help="mean handle time, seconds")
    parser.add_argument("--within", type=float, default=20, help="service-level answer time, s")
    parser.add_argument(
        "--target-sl", default="80/20", help="plan target when --agents is not given"
    )
    parser.add_argument("--max-occupancy", type=float, default=1.0)
    parser.add_argument("--agents", type=int, help="operators (default: the Erlang C plan)")
    parser.add_argument("--patience", type=float, default=60, help="mean patience, s; 0 = never")
    parser.add_argument("--hours", type=float, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--forecast", type=Path, help="`hotline staffing --json` output")
    parser.add_argument("--days", type=int, default=50, help="runs of each forecast day")
    args = parser.parse_args(argv)
    if args.forecast is not None:
        check_forecast(args.forecast, args.patience or None, args.days, args.seed)
        return
    share, within = erlang.Target.parse_service_level(args.target_sl)
    target = erlang.Target(
        service_level=share, answer_seconds=within, max_occupancy=args.max_occupancy
    )
    plan = erlang.agents_needed(args.calls, args.handle, args.interval, target)
    agents = args.agents or plan.agents
    predicted = erlang.evaluate(args.calls, args.handle, args.interval, agents, args.within)
    outcome = simulate(
        calls=args.calls,
        interval_seconds=args.interval,
        handle_seconds=args.handle,
        agents=agents,
        within=args.within,
        patience_seconds=args.patience or None,
        hours=args.hours,
        seed=args.seed,
    )
    print(
        json.dumps(
            {
                "agents": agents,
                "erlang_c": {
                    "service_level": round(predicted.service_level, 4),
                    "average_wait": round(predicted.average_wait, 2),
                    "wait_probability": round(predicted.wait_probability, 4),
                },
                "simulated": _figures(outcome),
            }
        )
    )


if __name__ == "__main__":
    main()
