"""Erlang C against published worked examples, and the occupancy cap."""

from __future__ import annotations

import math

import pytest

from call_router import erlang
from call_router.erlang import ErlangError, Target


def test_hundred_calls_per_half_hour_needs_fourteen() -> None:
    # The worked example of pyworkforce's README and the R ErlangC package: 100 calls per
    # 30 min, 180 s handle time, 80 % within 20 s → 14 agents, SL 0.888, P(wait) 0.174.
    plan = erlang.agents_needed(
        100, 180, 1800, Target(service_level=0.8, answer_seconds=20, max_occupancy=1.0)
    )
    assert plan.agents == 14
    assert plan.traffic == pytest.approx(10.0)
    assert plan.service_level == pytest.approx(0.888, abs=5e-4)
    assert plan.wait_probability == pytest.approx(0.174, abs=5e-4)
    assert plan.occupancy == pytest.approx(0.714, abs=5e-4)
    assert plan.limited_by == "service_level"
    # 13 agents miss the target: 14 is the fewest.
    assert erlang.service_level(10.0, 13, 180, 20) < 0.8


def test_westbay_step_by_step_example() -> None:
    # "The Erlang-C formula" step by step (Westbay Engineers): 360 calls per half hour, 4-minute
    # calls, 55 agents, 15 s target → 48 Erlangs, occupancy 87.3 %, P(wait) 0.24, ASA 8.2 s,
    # service level 84.6 %.
    figures = erlang.evaluate(360, 240, 1800, 55, 15)
    assert figures.traffic == pytest.approx(48.0)
    assert figures.occupancy == pytest.approx(0.873, abs=5e-4)
    assert figures.wait_probability == pytest.approx(0.24, abs=5e-3)
    assert figures.average_wait == pytest.approx(8.2, abs=0.05)
    assert figures.service_level == pytest.approx(0.846, abs=5e-4)


def test_average_wait_target() -> None:
    plan = erlang.agents_needed(100, 180, 1800, Target(average_wait=60, max_occupancy=1.0))
    assert plan.average_wait <= 60
    assert erlang.average_wait(10.0, plan.agents - 1, 180) > 60
    assert plan.limited_by == "average_wait"


def test_both_targets_take_the_stricter() -> None:
    both = Target(service_level=0.8, answer_seconds=20, average_wait=2, max_occupancy=1.0)
    plan = erlang.agents_needed(100, 180, 1800, both)
    assert plan.average_wait <= 2 and plan.service_level >= 0.8
    assert plan.agents > 14 and plan.limited_by == "average_wait"


def test_occupancy_cap_adds_operators_at_volume() -> None:
    # 400 calls per quarter hour of 180 s: 80 Erlangs. Erlang C alone plans ~88 % busy.
    uncapped = erlang.agents_needed(400, 180, 900, Target(average_wait=60, max_occupancy=1.0))
    capped = erlang.agents_needed(400, 180, 900, Target(average_wait=60, max_occupancy=0.85))
    assert uncapped.occupancy > 0.85
    assert capped.agents == math.ceil(80 / 0.85) and capped.limited_by == "occupancy"
    assert capped.occupancy <= 0.85


def test_large_centres_do_not_overflow() -> None:
    # 2000 Erlangs: the textbook sum would need 2000! - the recurrence does not.
    plan = erlang.agents_needed(10_000, 180, 900, Target(service_level=0.8, max_occupancy=1.0))
    assert 2000 < plan.agents < 2100
    assert 0 < plan.wait_probability < 1


def test_no_calls_no_operators() -> None:
    plan = erlang.agents_needed(0, 180, 900, Target(average_wait=60))
    assert plan.agents == 0 and plan.limited_by == "idle"


def test_overloaded_queue_waits_for_ever() -> None:
    assert erlang.wait_probability(10.0, 10) == 1.0
    assert erlang.average_wait(10.0, 9, 180) == math.inf
    assert erlang.service_level(10.0, 10, 180, 20) == 0.0


@pytest.mark.parametrize(
    ("text", "parsed"), [("80/20", (0.8, 20.0)), ("90/15", (0.9, 15.0)), ("95.5/30", (0.955, 30.0))]
)
def test_service_level_text(text: str, parsed: tuple[float, float]) -> None:
    assert Target.parse_service_level(text) == pytest.approx(parsed)


@pytest.mark.parametrize("text", ["80", "80/", "/20", "0/20", "100/20", "abc/20", "80/-1", "80/x"])
def test_bad_service_level_text_is_a_clear_error(text: str) -> None:
    with pytest.raises(ErlangError, match="PERCENT/SECONDS"):
        Target.parse_service_level(text)


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"service_level": 1.2}, {"average_wait": 0}, {"average_wait": 60, "max_occupancy": 0}],
)
def test_bad_targets_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ErlangError):
        Target(**kwargs)
