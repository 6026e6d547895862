"""Erlang C staffing: how many operators a quarter hour needs for a target, capped by occupancy.

Pure arithmetic, no I/O. Erlang C (M/M/N: Poisson arrivals, exponential handle times, callers
who wait for ever) gives the probability that a caller waits, the service level ("X % answered
within Y s") and the average speed of answer. At hotline volumes it alone plans operators who are
busy 95-99 % of the time, which no team sustains, so every plan is also held to a maximum
occupancy (traffic / operators).

The probability of waiting is computed through the Erlang B recurrence
(B(0) = 1, B(n) = A·B(n-1) / (n + A·B(n-1))), which never forms A^N or N! and so stays exact
for hundreds of operators, where the textbook sum overflows.

Checked against published worked examples (tests/unit/test_erlang.py): 100 calls per 30 min,
180 s handle time, 20 s target → 14 operators, service level 0.888, probability of waiting
0.174; and 360 calls per 30 min, 240 s, 55 operators, 15 s → waiting 0.24, ASA 8.2 s,
service level 0.845.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# Past this many operators a plan is not a plan but a typo (or a flood): stop searching.
MAX_AGENTS = 10_000


class ErlangError(ValueError):
    """Bad input for a staffing computation; the message is safe to show."""


@dataclass(frozen=True)
class Target:
    """What a quarter hour must achieve. Either or both of:

    `service_level` of calls answered within `answer_seconds` (80/20: 0.8 within 20 s), and
    `average_wait` (ASA) at most this many seconds. `max_occupancy` caps how busy operators are.
    """

    service_level: float | None = None
    answer_seconds: float = 20.0
    average_wait: float | None = None
    max_occupancy: float = 0.85

    def __post_init__(self) -> None:
        if self.service_level is None and self.average_wait is None:
            raise ErlangError("a target needs a service level or an average wait")
        if self.service_level is not None and not 0 < self.service_level < 1:
            raise ErlangError("the service level is a share between 0 and 1 (0.8 = 80 %)")
        if self.answer_seconds < 0:
            raise ErlangError("the answer time cannot be negative")
        if self.average_wait is not None and self.average_wait <= 0:
            raise ErlangError("the average wait must be more than 0 seconds")
        if not 0 < self.max_occupancy <= 1:
            raise ErlangError("the maximum occupancy is a share between 0 and 1 (0.85 = 85 %)")

    def as_dict(self) -> dict[str, float | None]:
        return {
            "service_level": self.service_level,
            "answer_seconds": self.answer_seconds,
            "average_wait": self.average_wait,
            "max_occupancy": self.max_occupancy,
        }

    @classmethod
    def parse_service_level(cls, text: str) -> tuple[float, float]:
        """'80/20' → (0.8, 20.0): 80 % answered within 20 s."""
        share, sep, seconds = text.partition("/")
        try:
            percent, within = float(share), float(seconds)
        except ValueError:
            raise ErlangError(
                f"service level {text!r}: expected PERCENT/SECONDS, e.g. 80/20"
            ) from None
        if not sep or not 0 < percent < 100 or within < 0:
            raise ErlangError(f"service level {text!r}: expected PERCENT/SECONDS, e.g. 80/20")
        return percent / 100, within


def target_from_options(
    average_wait: float | None,
    service_level_text: str | None,
    max_occupancy: float,
    default_service_level: tuple[float, float],
) -> Target:
    """The target a user asked for (`--target-asa 60`, `--target-sl 80/20`, both, or neither:
    then `default_service_level`, the configured share and answer time)."""
    share, within = default_service_level
    if service_level_text is not None:
        share, within = Target.parse_service_level(service_level_text)
    wants_service_level = service_level_text is not None or average_wait is None
    return Target(
        service_level=share if wants_service_level else None,
        answer_seconds=within,
        average_wait=average_wait,
        max_occupancy=max_occupancy,
    )


@dataclass(frozen=True)
class Staffing:
    """The operators one interval needs and what they would achieve."""

    agents: int
    traffic: float  # Erlangs: arrivals × handle time / interval
    wait_probability: float
    service_level: float  # of the target's answer time
    average_wait: float  # seconds (ASA)
    occupancy: float
    # What decided the number: "service_level", "average_wait", "occupancy" or "idle".
    limited_by: str


def traffic(calls: float, handle_seconds: float, interval_seconds: float) -> float:
    """Offered load in Erlangs."""
    if calls < 0 or handle_seconds < 0 or interval_seconds <= 0:
        raise ErlangError("calls and handle time cannot be negative, the interval must be > 0")
    return calls * handle_seconds / interval_seconds


def erlang_b(load: float, agents: int) -> float:
    """Probability that a call finds every operator busy with no queue (Erlang B)."""
    if load < 0 or agents < 0:
        raise ErlangError("load and agents cannot be negative")
    blocking = 1.0
    for n in range(1, agents + 1):
        blocking = load * blocking / (n + load * blocking)
    return blocking


def wait_probability(load: float, agents: int) -> float:
    """Erlang C: probability that a caller waits. 1 when the operators cannot keep up."""
    if agents <= load:
        return 1.0 if load > 0 else 0.0
    blocking = erlang_b(load, agents)
    return agents * blocking / (agents - load * (1 - blocking))


def service_level(load: float, agents: int, handle_seconds: float, within: float) -> float:
    """Share of callers answered within `within` seconds."""
    if load == 0:
        return 1.0
    if agents <= load:
        return 0.0
    waits = wait_probability(load, agents)
    return max(0.0, 1 - waits * math.exp(-(agents - load) * within / handle_seconds))


def average_wait(load: float, agents: int, handle_seconds: float) -> float:
    """Average speed of answer in seconds (over every caller, waiting or not)."""
    if load == 0:
        return 0.0
    if agents <= load:
        return math.inf
    return wait_probability(load, agents) * handle_seconds / (agents - load)


def evaluate(
    calls: float, handle_seconds: float, interval_seconds: float, agents: int, within: float
) -> Staffing:
    """What `agents` operators achieve for this interval's calls."""
    load = traffic(calls, handle_seconds, interval_seconds)
    return Staffing(
        agents=agents,
        traffic=load,
        wait_probability=wait_probability(load, agents),
        service_level=service_level(load, agents, handle_seconds, within),
        average_wait=average_wait(load, agents, handle_seconds),
        occupancy=load / agents if agents else 0.0,
        limited_by="",
    )


def agents_needed(
    calls: float, handle_seconds: float, interval_seconds: float, target: Target
) -> Staffing:
    """The fewest operators that meet every part of `target` (0 when no call is expected)."""
    load = traffic(calls, handle_seconds, interval_seconds)
    if load == 0:
        return Staffing(0, 0.0, 0.0, 1.0, 0.0, 0.0, "idle")
    by_occupancy = math.ceil(load / target.max_occupancy - 1e-9)
    agents = max(1, math.floor(load) + 1)
    while agents <= MAX_AGENTS:
        sl_ok = target.service_level is None or (
            service_level(load, agents, handle_seconds, target.answer_seconds)
            >= target.service_level - 1e-12
        )
        asa_ok = target.average_wait is None or (
            average_wait(load, agents, handle_seconds) <= target.average_wait + 1e-12
        )
        if sl_ok and asa_ok:
            break
        agents += 1
    else:
        raise ErlangError(f"more than {MAX_AGENTS} operators needed: check the figures")
    limited_by = "service_level" if target.service_level is not None else "average_wait"
    if target.service_level is not None and target.average_wait is not None:
        fewer = agents - 1
        sl_at_fewer = service_level(load, fewer, handle_seconds, target.answer_seconds)
        if fewer > load and sl_at_fewer >= target.service_level - 1e-12:
            limited_by = "average_wait"
    if by_occupancy > agents:
        agents, limited_by = by_occupancy, "occupancy"
    figures = evaluate(calls, handle_seconds, interval_seconds, agents, target.answer_seconds)
    return Staffing(
        agents=agents,
        traffic=load,
        wait_probability=figures.wait_probability,
        service_level=figures.service_level,
        average_wait=figures.average_wait,
        occupancy=figures.occupancy,
        limited_by=limited_by,
    )
