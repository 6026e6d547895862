"""The saturation ramp's judgement, free of I/O so it can be unit-tested: is a step healthy,
which step is the first to fail, and which part of the system gave way.

A step is a dict as `bench/load/saturate.py` records it (the keys read here are documented on
each function). The rules are deliberately simple and written down in BENCHMARKS.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Processes that do their work on one thread (one core at most): SIPp, and the Python services
# (the GIL; their database threads mostly wait). Asterisk and PostgreSQL use several cores.
SINGLE_CORE = ("sipp_callers", "sipp_operators", "agi", "router")


@dataclass(frozen=True)
class Limits:
    """What a healthy step looks like."""

    min_completion_pct: float = 95.0  # calls that ended with a clean BYE, % of planned
    min_rate_ratio: float = 0.9  # new calls/s reached / asked
    max_failed_pct: float = 2.0  # SIP errors + never answered + AGI fail-safe, % of planned
    max_menu_excess_s: float = 2.0  # menu p95 above the first step's p50 (the fixed prompts)
    max_ami_lag_p95_s: float = 5.0  # AMI event → call-log row
    max_invite_to_200_ms: float = 500.0  # Asterisk's SIP answer, mean (idle: a few ms)
    busy_core_pct: float = 85.0  # a one-core process at this share of its core is saturated
    busy_machine_pct: float = 90.0  # every core of the machine this busy: the machine is


def creation_rate(samples: Sequence[tuple[float, int]], calls: int) -> float | None:
    """New calls/s the load generator reached, from (time, calls created so far) samples taken
    about once a second: the calls created between the first sample that saw any and the first
    that saw all of them (or the last), over the time between those samples."""
    seen = [(t, n) for t, n in samples if n > 0]
    if len(seen) < 2:
        return None
    (ta, na) = seen[0]
    tb, nb = next(((t, n) for t, n in seen if n >= calls), seen[-1])
    if tb <= ta:
        return None
    return round((nb - na) / (tb - ta), 2)


def failed_calls(step: Mapping[str, Any]) -> int:
    """Callers who did not get the menu's service: SIP errors, never answered, AGI fail-safe
    (sent to the coordinator without the menu), hung up while still in the menu."""
    return (
        sum(step["rejected"].values())
        + step["not_answered"]
        + step["fail_safe"]
        + step["outcomes"].get("abandoned_in_menu", 0)
    )


def caller_problems(
    step: Mapping[str, Any], baseline_menu_s: float | None, limits: Limits = Limits()
) -> list[str]:
    """What callers felt (empty: nothing). Reads target_rate, achieved_rate, planned,
    completion_pct, rejected {code: n}, not_answered, fail_safe, outcomes, invite_to_200_ms
    (the caller hears ringing that long before the menu), menu_s {p95}."""
    problems = []
    if (step["achieved_rate"] or 0.0) < limits.min_rate_ratio * step["target_rate"]:
        problems.append(
            f"rate {step['achieved_rate'] or 0:.1f}/s of {step['target_rate']:g}/s asked"
        )
    if step["completion_pct"] < limits.min_completion_pct:
        problems.append(f"completion {step['completion_pct']:.1f} %")
    failed = failed_calls(step)
    if 100 * failed / max(1, step["planned"]) > limits.max_failed_pct:
        problems.append(f"{failed} of {step['planned']} callers failed")
    inv = step.get("invite_to_200_ms")
    if inv is not None and inv > limits.max_invite_to_200_ms:
        problems.append(f"INVITE → 200 OK {inv:.0f} ms on average")
    menu_p95 = step["menu_s"].get("p95")
    if (
        menu_p95 is not None
        and baseline_menu_s is not None
        and menu_p95 - baseline_menu_s > limits.max_menu_excess_s
    ):
        problems.append(f"menu p95 {menu_p95:.1f} s (first step p50 {baseline_menu_s:.1f} s)")
    return problems


def log_problems(step: Mapping[str, Any], limits: Limits = Limits()) -> list[str]:
    """The call log falling behind Asterisk (empty: it keeps up). Reads ami_lag_s {p95}."""
    lag = step["ami_lag_s"].get("p95")
    if lag is not None and lag > limits.max_ami_lag_p95_s:
        return [f"AMI event → row lag p95 {lag:.1f} s"]
    return []


def step_problems(
    step: Mapping[str, Any], baseline_menu_s: float | None, limits: Limits = Limits()
) -> list[str]:
    """Why this step is not healthy (empty: it is): what callers felt, then the call log."""
    return caller_problems(step, baseline_menu_s, limits) + log_problems(step, limits)


def bottleneck(
    step: Mapping[str, Any], baseline_menu_s: float | None = None, limits: Limits = Limits()
) -> dict[str, Any]:
    """The part that gave way in a failing step, with the evidence. Reads cpu_pct {process:
    % of one core}, machine_busy_pct (all cores = 100), and what queue_symptoms reads.

    Order: a one-core process at its limit is the bottleneck (it cannot go faster whatever the
    rest does); else the first part whose queue grew (queue_symptoms' order), with the machine's
    load named (on a shared machine every part is short of CPU before any is at its own
    limit); else, if every core is busy, the machine."""
    cpu: Mapping[str, float] = step["cpu_pct"]
    waits: Mapping[str, float] = step.get("runqueue_wait_pct") or {}
    evidence = [
        f"{name} {pct:.0f} % of one core"
        + (f" + {waits[name]:.0f} % waiting for a CPU" if name in waits else "")
        for name, pct in sorted(cpu.items(), key=lambda i: -i[1])
    ]
    busy = step["machine_busy_pct"]
    evidence.append(f"machine {busy:.0f} % busy (all cores, other jobs included)")
    ast = step.get("asterisk_at_full_load") or {}
    if ast.get("channels"):
        evidence.append(f"asterisk at full load: {', '.join(ast['channels'])}")
    if ast.get("contacts_unreachable"):
        evidence.append(f"asterisk: {ast['contacts_unreachable']} operator contacts unreachable")
    queued = [t for t in ast.get("taskprocessors_in_queue", []) if t["in_queue"] > 0]
    if queued:
        tps = ", ".join(f"{t['name']} {t['in_queue']}" for t in queued)
        evidence.append(f"asterisk task-processor queues at full load: {tps}")
    symptoms = queue_symptoms(step, baseline_menu_s, limits)
    evidence += symptoms
    full = [n for n in SINGLE_CORE if cpu.get(n, 0.0) >= limits.busy_core_pct]
    if full:
        part = max(full, key=lambda n: cpu[n])
        why = f"{part} at {cpu[part]:.0f} % of its one core"
        return {"part": part, "why": why, "evidence": evidence}
    if symptoms:
        part, what = symptoms[0].split(": ", 1)
        # The menu is the FastAGI server and Asterisk (prompts, DTMF) together.
        users = ("agi", "asterisk") if part == "menu" else (part,)
        shares = ", ".join(f"{u} {cpu.get(u, 0.0):.0f} %" for u in users)
        why = f"{what}; {shares} of one core, machine {busy:.0f} % busy"
        return {"part": part, "why": why, "evidence": evidence}
    if busy >= limits.busy_machine_pct:
        top = max(cpu, key=lambda n: cpu[n]) if cpu else "?"
        why = f"all cores {busy:.0f} % busy; our largest user {top} ({cpu.get(top, 0):.0f} %)"
        return {"part": "machine CPU", "why": why, "evidence": evidence}
    why = "no process at its limit, no queue grew"
    return {"part": "unknown", "why": why, "evidence": evidence}


def queue_symptoms(
    step: Mapping[str, Any], baseline_menu_s: float | None = None, limits: Limits = Limits()
) -> list[str]:
    """Queues that grew, each as "<part>: <what>", in the order a caller meets the parts: the
    load generator, Asterisk's SIP answer, the FastAGI server, the menu; the call log (router)
    last, as callers do not wait for it."""
    out = []
    achieved = step["achieved_rate"] or 0.0
    if achieved < limits.min_rate_ratio * step["target_rate"]:
        out.append(
            f"sipp_callers: the load generator made only {achieved:.1f} of"
            f" {step['target_rate']:g} new calls/s"
        )
    rejected = sum(step["rejected"].values())
    if rejected or step["not_answered"]:
        out.append(
            f"asterisk: {rejected} SIP errors {dict(step['rejected'])},"
            f" {step['not_answered']} INVITEs never answered"
        )
    inv = step.get("invite_to_200_ms")
    if inv is not None and inv > limits.max_invite_to_200_ms:
        out.append(f"asterisk: INVITE → 200 OK takes {inv:.0f} ms on average")
    if step["fail_safe"]:
        out.append(f"agi: {step['fail_safe']} callers sent to the fail-safe (overload, no reply)")
    menu_p95 = step["menu_s"].get("p95")
    if (
        menu_p95 is not None
        and baseline_menu_s is not None
        and menu_p95 - baseline_menu_s > limits.max_menu_excess_s
    ):
        out.append(f"menu: p95 {menu_p95:.1f} s against {baseline_menu_s:.1f} s at first")
    if step["outcomes"].get("abandoned_in_menu", 0):
        out.append(f"menu: {step['outcomes']['abandoned_in_menu']} callers hung up in the menu")
    lag = step["ami_lag_s"].get("p95")
    if lag is not None and lag > limits.max_ami_lag_p95_s:
        out.append(f"router: AMI events wait {lag:.1f} s (p95) for their call-log row")
    return out


def judge(steps: Sequence[Mapping[str, Any]], limits: Limits = Limits()) -> dict[str, Any]:
    """The ramp's verdict, twice: for the callers (rate, completion, failures, menu time) and
    for the call log (AMI event → row lag). Each: the highest healthy rate, the first failing
    step, why, and the part that saturated. The first step's median menu time is the
    reference for the others."""
    baseline = steps[0]["menu_s"].get("p50") if steps else None
    callers = first_bad(steps, lambda s: caller_problems(s, baseline, limits))
    if callers["step"] is not None:
        callers["bottleneck"] = bottleneck(callers["step"], baseline, limits)
    call_log = first_bad(steps, lambda s: log_problems(s, limits))
    if call_log["step"] is not None:
        call_log["bottleneck"] = router_bottleneck(call_log["step"], limits)
    for verdict in (callers, call_log):
        verdict.pop("step")
    return {"callers": callers, "call_log": call_log}


def first_bad(
    steps: Sequence[Mapping[str, Any]], problems_of: Callable[[Mapping[str, Any]], list[str]]
) -> dict[str, Any]:
    last_good: float | None = None
    for step in steps:
        problems = problems_of(step)
        if problems:
            return {
                "last_good_rate": last_good,
                "saturated_at_rate": step["target_rate"],
                "problems": problems,
                "bottleneck": None,
                "step": step,
            }
        last_good = step["achieved_rate"]
    return {
        "last_good_rate": last_good,
        "saturated_at_rate": None,
        "problems": [],
        "bottleneck": None,
        "step": None,
    }


def router_bottleneck(step: Mapping[str, Any], limits: Limits = Limits()) -> dict[str, Any]:
    """The call log fell behind: the router's queue of AMI events grew. Is the router at its one
    core, or short of CPU on a busy machine, or waiting for the database?"""
    cpu: Mapping[str, float] = step["cpu_pct"]
    router, pg, busy = cpu.get("router", 0.0), cpu.get("postgres", 0.0), step["machine_busy_pct"]
    lag = step["ami_lag_s"].get("p95")
    waited = step.get("runqueue_wait_pct", {}).get("router")
    if waited is not None:
        router_text = f"router {router:.0f} % of one core + {waited:.0f} % waiting for a CPU"
    else:
        router_text = f"router {router:.0f} % of one core"
    where = (
        "at its one core"
        if router >= limits.busy_core_pct
        else "short of CPU: machine busy"
        if busy >= limits.busy_machine_pct
        else "not CPU-bound: waiting"
    )
    return {
        "part": "router",
        "why": f"AMI events wait {lag:.1f} s (p95) for their row; {router_text} ({where}),"
        f" our PostgreSQL backends {pg:.0f} %, machine {busy:.0f} % busy",
        "evidence": [],
    }
