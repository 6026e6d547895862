"""The saturation ramp's judgement (bench/load/saturation.py): healthy steps, the first bad
step, and the part named as the bottleneck."""

from __future__ import annotations

from typing import Any

from bench.load.saturation import (
    Limits,
    bottleneck,
    creation_rate,
    failed_calls,
    judge,
    step_problems,
)


def step(rate: float, **over: Any) -> dict[str, Any]:
    """A healthy step at `rate` calls/s, with `over` replacing any field."""
    base: dict[str, Any] = {
        "target_rate": rate,
        "achieved_rate": rate,
        "planned": int(rate * 60),
        "completion_pct": 100.0,
        "rejected": {},
        "not_answered": 0,
        "fail_safe": 0,
        "outcomes": {"answered": int(rate * 60)},
        "menu_s": {"p50": 6.2, "p95": 6.4},
        "ami_lag_s": {"p50": 0.05, "p95": 0.3},
        "invite_to_200_ms": 4.0,
        "cpu_pct": {"asterisk": 3 * rate, "agi": 2 * rate, "router": 2 * rate},
        "machine_busy_pct": 50.0,
    }
    return base | over


def test_creation_rate_counts_calls_between_first_and_complete_samples() -> None:
    samples = [(100.0, 0), (101.0, 10), (102.0, 20), (103.0, 30), (104.0, 30), (105.0, 30)]
    # 20 calls between the first sample that saw calls (101) and the one that saw all (103);
    # the samples after the last call was made do not dilute the rate.
    assert creation_rate(samples, 30) == 10.0
    assert creation_rate(samples, 20) == 10.0
    # Never reached the planned count: up to the last sample.
    assert creation_rate([(0.0, 5), (10.0, 55)], 600) == 5.0
    assert creation_rate([(0.0, 0), (1.0, 5)], 10) is None
    assert creation_rate([], 10) is None


def test_a_healthy_step_has_no_problems() -> None:
    assert step_problems(step(10), baseline_menu_s=6.2) == []
    assert failed_calls(step(10)) == 0


def test_each_limit_makes_a_step_unhealthy() -> None:
    base = 6.2
    assert step_problems(step(20, achieved_rate=17.0), base) == ["rate 17.0/s of 20/s asked"]
    assert step_problems(step(20, achieved_rate=None), base) == ["rate 0.0/s of 20/s asked"]
    assert step_problems(step(20, completion_pct=90.0), base) == ["completion 90.0 %"]
    # 1200 callers, 2 % allowed: 24 is fine, 25 is not.
    assert step_problems(step(20, fail_safe=24), base) == []
    assert step_problems(step(20, fail_safe=20, rejected={"503": 5}), base) == [
        "25 of 1200 callers failed"
    ]
    hung_up = step(20, outcomes={"answered": 1170, "abandoned_in_menu": 30})
    assert failed_calls(hung_up) == 30
    assert step_problems(step(20, menu_s={"p50": 7.0, "p95": 8.3}), base) == [
        "menu p95 8.3 s (first step p50 6.2 s)"
    ]
    assert step_problems(step(20, menu_s={"p50": 7.0, "p95": 8.1}), base) == []
    assert step_problems(step(20, ami_lag_s={"p95": 12.5}), base) == [
        "AMI event → row lag p95 12.5 s"
    ]
    assert step_problems(step(20, invite_to_200_ms=3340.0), base) == [
        "INVITE → 200 OK 3340 ms on average"
    ]
    assert step_problems(step(20, invite_to_200_ms=None), base) == []
    stricter = Limits(max_ami_lag_p95_s=0.1)
    assert step_problems(step(20), base, stricter) == ["AMI event → row lag p95 0.3 s"]


def test_judge_names_the_first_bad_step_for_callers_and_for_the_call_log() -> None:
    steps = [
        step(10, achieved_rate=9.9),
        step(15, achieved_rate=14.8, ami_lag_s={"p95": 30.0}, machine_busy_pct=99.0),
        step(20, fail_safe=100, cpu_pct={"agi": 97.0, "router": 40.0}),
        step(30),  # never the verdict: the callers' limit is at 20
    ]
    verdict = judge(steps)
    callers = verdict["callers"]
    assert callers["last_good_rate"] == 14.8
    assert callers["saturated_at_rate"] == 20
    assert callers["problems"] == ["100 of 1200 callers failed"]
    assert callers["bottleneck"]["part"] == "agi"
    assert callers["bottleneck"]["why"] == "agi at 97 % of its one core"
    log = verdict["call_log"]
    assert (log["last_good_rate"], log["saturated_at_rate"]) == (9.9, 15)
    assert log["problems"] == ["AMI event → row lag p95 30.0 s"]
    assert log["bottleneck"]["part"] == "router"
    assert log["bottleneck"]["why"] == (
        "AMI events wait 30.0 s (p95) for their row; router 30 % of one core (short of CPU:"
        " machine busy), our PostgreSQL backends 0 %, machine 99 % busy"
    )


def test_judge_of_a_ramp_that_never_saturates() -> None:
    verdict = judge([step(10), step(20)])
    for side in ("callers", "call_log"):
        assert verdict[side] == {
            "last_good_rate": 20,
            "saturated_at_rate": None,
            "problems": [],
            "bottleneck": None,
        }
    assert judge([])["callers"]["last_good_rate"] is None


def test_a_one_core_process_at_its_limit_is_named_before_any_symptom() -> None:
    s = step(
        30,
        cpu_pct={"sipp_callers": 92.0, "agi": 88.0, "asterisk": 150.0},
        fail_safe=40,
        machine_busy_pct=99.0,
    )
    got = bottleneck(s)
    assert got["part"] == "sipp_callers"  # the busiest of the one-core processes at the limit
    assert "agi: 40 callers sent to the fail-safe (overload, no reply)" in got["evidence"]
    # Asterisk uses several cores: 150 % of one is not "at its limit".
    assert bottleneck(step(30, cpu_pct={"asterisk": 150.0}))["part"] == "unknown"


def test_without_a_full_core_the_first_grown_queue_is_named_with_the_machine_load() -> None:
    s = step(
        20,
        menu_s={"p50": 9.0, "p95": 11.0},
        ami_lag_s={"p95": 0.4},
        cpu_pct={"agi": 40.0, "asterisk": 70.0, "router": 30.0},
        machine_busy_pct=98.0,
    )
    got = bottleneck(s, baseline_menu_s=6.2)
    assert got["part"] == "menu"
    assert got["why"] == (
        "p95 11.0 s against 6.2 s at first; agi 40 %, asterisk 70 % of one core, machine 98 % busy"
    )
    # Callers do not wait for the call log: a slow menu is named before the router's lag.
    lagging = step(20, ami_lag_s={"p95": 9.0}, menu_s={"p50": 9.0, "p95": 11.0})
    assert bottleneck(lagging, baseline_menu_s=6.2)["part"] == "menu"
    assert bottleneck(step(20, ami_lag_s={"p95": 9.0}))["part"] == "router"
    slow_sip = step(20, invite_to_200_ms=540.0, menu_s={"p50": 9.0, "p95": 11.0})
    assert bottleneck(slow_sip, baseline_menu_s=6.2)["part"] == "asterisk"
    slow_generator = step(40, achieved_rate=30.0, ami_lag_s={"p95": 9.0})
    assert bottleneck(slow_generator)["part"] == "sipp_callers"
    sip = bottleneck(step(40, rejected={"503": 7}, not_answered=3))
    assert sip["part"] == "asterisk"
    assert sip["why"].startswith("7 SIP errors {'503': 7}, 3 INVITEs never answered")


def test_a_busy_machine_without_symptoms_is_the_machine() -> None:
    got = bottleneck(step(20, machine_busy_pct=97.0, cpu_pct={"asterisk": 60.0, "agi": 20.0}))
    assert got["part"] == "machine CPU"
    assert got["why"] == "all cores 97 % busy; our largest user asterisk (60 %)"
    assert "machine 97 % busy (all cores, other jobs included)" in got["evidence"]


def test_the_evidence_names_cpu_waits_and_asterisk_queues() -> None:
    s = step(
        15,
        cpu_pct={"asterisk": 40.0, "router": 15.0},
        runqueue_wait_pct={"router": 70.0},
        asterisk_at_full_load={
            "channels": ["380 active channels", "260 active calls"],
            "contacts_unreachable": 12,
            "taskprocessors_in_queue": [
                {"name": "stasis/m:manager:core-0000000c", "in_queue": 5120, "max_depth": 6237},
                {"name": "app_voicemail", "in_queue": 0, "max_depth": 0},
            ],
        },
    )
    evidence = bottleneck(s)["evidence"]
    assert evidence[:2] == [
        "asterisk 40 % of one core",
        "router 15 % of one core + 70 % waiting for a CPU",
    ]
    assert "asterisk at full load: 380 active channels, 260 active calls" in evidence
    assert "asterisk: 12 operator contacts unreachable" in evidence
    assert (
        "asterisk task-processor queues at full load: stasis/m:manager:core-0000000c 5120"
        in evidence
    )
