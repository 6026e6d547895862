"""Cluster benchmark: `hotline cluster` (Kamailio + N Asterisk nodes) under SIPp calls.

Three measurements, each on its own fresh cluster (bench/cluster/stack.py) and database:

    scale     N = 1, 2, 3 nodes (--nodes): at each N a short ramp of new-call rates (--rates,
              --step s each); per step the reached rate, calls in progress, what became of the
              callers, how Kamailio spread them over the nodes (calls.node), and the CPU of
              every part (asterisk vs python vs kamailio, psutil), with the one that saturates.
    failover  N nodes under a steady load; `hotline cluster stop-node 1` (SIGKILL) at
              --kill-at s: when Kamailio took node 1 out, the calls that died with it, and the
              time from the last failed call to the first good call after it.
    day       a Monday compressed to --day-minutes: arrivals by hour (bench/cluster/day.py) up to
              --peak-rate calls/s, --operators operators talking --talk s; SLA (answered
              within --sla s of joining the queue) and abandonment, per hour and in all.

    .venv/bin/python bench/cluster/run.py scale --nodes 1,2,3 --rates 3,6 --step 30 \\
        --json bench/cluster/results/scale.json
    .venv/bin/python bench/cluster/run.py failover --nodes 2 --rate 3 --seconds 60 --kill-at 25
    .venv/bin/python bench/cluster/run.py day --nodes 2 --operators 6 --peak-rate 1.5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.callstack import (  # noqa: E402
    CALLER_PREFIX,
    CallerPlan,
    answered_numbers,
    hotline,
    log,
    machine,
    percentile,
    read_log_lines,
    wait_for_rows,
)
from bench.cluster.day import segments  # noqa: E402
from bench.cluster.stack import ClusterStack, LogTail, RotationWatch  # noqa: E402
from bench.load.saturate import CpuMeter, analyse_step, sipp_stat  # noqa: E402

# Its own ports (tests use 18000+, bench/load 20000/25000): stack base..base+999, the day's
# extra carriers base+1000..base+1199, all on 127.0.0.1 (the nodes on 127.0.0.2, ...).
PORT_BASE = 31000
RTP_END = 999
MEDIA_PORTS = (20, 30)


def parts(cpu: dict[str, float]) -> dict[str, float]:
    """CPU % of one core by kind of part: every node's Asterisk, our Python processes (FastAGI
    servers, routers, the dashboard), Kamailio, PostgreSQL, the SIPp load generators."""

    def kind(name: str) -> str:
        head = name.split("/", 1)[0]
        if head in ("agi", "router", "dashboard"):
            return "python"
        return "sipp" if head.startswith("sipp") else head

    out: Counter[str] = Counter()
    for name, pct in cpu.items():
        out[kind(name)] += pct
    return {k: round(v, 1) for k, v in sorted(out.items())}


def bottleneck(step: dict[str, Any]) -> str:
    """The part with the most CPU, and a one-core process near its core if there is one."""
    cpu: dict[str, float] = step.get("cpu_pct", {})
    by_kind = parts(cpu)
    top = max(by_kind, key=lambda k: by_kind[k]) if by_kind else "?"
    hot = [n for n, v in cpu.items() if v >= 85 and not n.startswith("asterisk")]
    note = f"; at its core: {', '.join(hot)}" if hot else ""
    busy = step.get("machine_busy_pct")
    return f"{top} ({by_kind.get(top)} % of one core; machine {busy} % busy){note}"


def node_split(db_url: str, first: int, last: int) -> dict[str, int]:
    """How many of callers first..last each node served (calls.node)."""
    from sqlalchemy import create_engine, text

    wanted = {f"{CALLER_PREFIX}{i:05d}" for i in range(first, last + 1)}
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT caller_number, node FROM calls WHERE caller_number LIKE :p"),
                {"p": CALLER_PREFIX + "%"},
            ).all()
    finally:
        engine.dispose()
    return dict(Counter(str(node) for number, node in rows if number in wanted))


def new_stack(args: argparse.Namespace, nodes: int, name: str) -> ClusterStack:
    return ClusterStack(
        name,
        nodes,
        db="postgres",
        port_base=args.port_base,
        keep=args.keep,
        queue_timeout=int(args.patience) + 30,
        rtp_end=RTP_END,
        media_ports=MEDIA_PORTS,
    )


def plan_for(args: argparse.Namespace, calls: int, rate: float, first: int, tag: str) -> CallerPlan:
    return CallerPlan(
        calls=calls,
        rate=rate,
        concurrent=int(rate * (args.patience + 15)) + 50,
        patience=args.patience,
        dtmf_delay=1.5,
        audio=0.5,
        digit=args.digit,
        first=first,
        tag=tag,
        recv_timeout=args.patience,
    )


# --- scale ---------------------------------------------------------------------------------


def scale(args: argparse.Namespace) -> dict[str, Any]:
    runs = []
    for nodes in [int(n) for n in args.nodes.split(",")]:
        with new_stack(args, nodes, f"cl{nodes}") as stack:
            stack.up(args.operators, args.queue, args.talk, operator_life_s=1800)
            meter = CpuMeter(stack, stack.db_name)
            meter.start()
            first, steps = 1, []
            for rate in [float(r) for r in args.rates.split(",")]:
                calls = max(1, round(rate * args.step))
                plan = plan_for(args, calls, rate, first, f"-n{nodes}-r{rate:g}")
                log(f"{nodes} nodes, {rate:g} calls/s: {calls} calls")
                t0 = time.time()
                stack.start_callers(plan)
                meter.stats_file = stack.caller_file("stats.csv", plan.tag)
                code = stack.wait_callers(plan)
                t1 = time.time()
                stats = sipp_stat(meter.stats_file) | {"exit": code, "load": os.getloadavg()}
                lines = read_log_lines(stack.caller_file("logs.log", plan.tag))
                wait_for_rows(stack.db_url, set(answered_numbers(lines)), args.settle)
                step = analyse_step(
                    stack, meter, plan, rate, lines, stats, t0, t1, args, Counter(), (0, 0, 0)
                )
                step["nodes_served"] = node_split(stack.db_url, first, first + calls - 1)
                step["cpu_by_part"] = parts(step["cpu_pct"])
                step["bottleneck"] = bottleneck(step)
                keys = ("achieved_rate", "completion_pct", "operator_answered", "open_calls_peak")
                log(f"  {json.dumps({k: step[k] for k in keys})} {step['nodes_served']}")
                log(f"  cpu {step['cpu_by_part']}; {step['bottleneck']}")
                steps.append(step)
                first += calls
            meter.stop()
            runs.append({"nodes": nodes, "members_per_node": stack.members, "steps": steps})
    return {"runs": runs}


# --- failover ------------------------------------------------------------------------------


def failover(args: argparse.Namespace) -> dict[str, Any]:
    with new_stack(args, args.nodes, "clfo") as stack:
        stack.up(args.operators, args.queue, args.talk, operator_life_s=1800)
        calls = round(args.rate * args.seconds)
        plan = plan_for(args, calls, args.rate, 1, "-fo")
        watch = RotationWatch(stack)
        watch.start()
        tail = LogTail(stack.caller_file("logs.log", plan.tag))
        tail.start()
        t0 = time.time()
        stack.start_callers(plan)
        time.sleep(max(0.0, t0 + args.kill_at - time.time()))
        # The kill is when node 1's Asterisk is gone, not when we asked: the `hotline` command
        # takes a second or more to start on a loaded machine.
        death = DeathWatch(stack.pids["asterisk/node1"])
        death.start()
        asked_at = time.time()
        out = hotline("cluster", "stop-node", "1", timeout=60)
        death.join(timeout=30)
        killed_at = death.died_at or asked_at
        log(f"stop-node 1 asked at {asked_at - t0:.1f} s, dead at {killed_at - t0:.1f} s")
        log(out.strip())
        code = stack.wait_callers(plan)
        tail.stop()
        watch.stop()
        result = judge_failover(plan, tail.seen, t0, killed_at, watch.first_out("node1", killed_at))
        result["sipp_exit"] = code
        result["stop_node_command_s"] = round(killed_at - asked_at, 2)
        lines = read_log_lines(stack.caller_file("logs.log", plan.tag))
        wait_for_rows(stack.db_url, set(answered_numbers(lines)), args.settle)
        result["nodes_served"] = node_split(stack.db_url, 1, calls)
        result["members_per_node"] = stack.members
        return result


class DeathWatch(threading.Thread):
    """The moment a process is gone (or a zombie), polled every 10 ms."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.died_at: float | None = None

    def run(self) -> None:
        import psutil  # type: ignore[import-untyped]

        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if psutil.Process(self.pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.Error:
                break
            time.sleep(0.01)
        self.died_at = time.time()


def judge_failover(
    plan: CallerPlan,
    seen: list[tuple[float, list[str]]],
    t0: float,
    killed_at: float,
    out_at: float | None,
) -> dict[str, Any]:
    """Each call's fate (good: Asterisk answered it and it ended with a BYE; failed: refused,
    never answered, or cut without a BYE) and when its INVITE left: SIPp's steady -r sends call
    i at start + i / rate, where SIPp's start lags t0 (its launch) by `offset`, estimated as the
    smallest answer time minus planned time before the kill (an upper bound: start lag plus the
    quickest answer). Calls answered before the kill and then cut were in progress on the dead
    node; the others that failed are new calls the failover did not save."""
    answered: dict[str, float] = {}
    ended: set[str] = set()
    refused: dict[str, str] = {}
    for t, f in seen:
        if len(f) < 2:
            continue
        if f[0] == "ANSWERED":
            answered.setdefault(f[1], t)
        elif f[0] in ("LOCAL_BYE", "REMOTE_BYE"):
            ended.add(f[1])
        elif f[0] == "REJECTED":
            refused[f[1]] = f[3] if len(f) > 3 else "?"
    planned = {n: t0 + i / plan.rate for i, n in enumerate(plan.numbers)}
    offset = min(
        (answered[n] - planned[n] for n in answered if answered[n] < killed_at), default=0.0
    )
    calls = []
    for number in plan.numbers:
        sent = planned[number] + offset - killed_at
        good = number in answered and number in ended and number not in refused
        wait = answered[number] - planned[number] - offset if number in answered else None
        if good:
            fate = "good"
        elif number in refused:
            fate = f"refused {refused[number]}"
        elif number in answered and answered[number] < killed_at:
            fate = "in progress on the dead node: cut"
        elif number in answered:
            fate = "answered after the kill, then cut"
        else:
            fate = "never answered"
        calls.append((sent, good, wait, fate))
    failed = [c for c in calls if not c[1]]
    cut = [c for c in failed if c[3].startswith("in progress")]
    new = [c for c in failed if not c[3].startswith("in progress")]
    last_failed = max((c[0] for c in new), default=None)
    first_good = (
        min((c[0] for c in calls if c[1] and c[0] > last_failed), default=None)
        if last_failed is not None
        else None
    )
    near = [c[2] for c in calls if 0 <= c[0] <= 10 and c[2] is not None]
    usual = [c[2] for c in calls if c[0] < -3 and c[2] is not None]
    return {
        "calls": len(calls),
        "kill_at_s": round(killed_at - t0, 1),
        "sipp_start_offset_s": round(offset, 2),
        "node1_out_of_rotation_after_s": None if out_at is None else round(out_at - killed_at, 2),
        "cut_in_progress": len(cut),
        "new_calls_failed": len(new),
        "last_failed_new_call_sent_s": _r(last_failed),
        "first_good_call_after_it_s": _r(first_good),
        # From the kill until new calls succeed again: the first good call after the last new
        # call that failed (0: no new call failed; the callers' extra wait is below).
        "failover_s": 0.0 if not new else _r(first_good),
        "answer_wait_s_before_kill_p50": _r(percentile(usual, 0.5)),
        "answer_wait_s_first_10s_after_kill": {
            "p50": _r(percentile(near, 0.5)),
            "max": _r(max(near) if near else None),
        },
        "good": sum(1 for c in calls if c[1]),
        "failed": [{"sent_s": round(c[0], 2), "fate": c[3]} for c in failed],
    }


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


# --- day -----------------------------------------------------------------------------------


def day(args: argparse.Namespace) -> dict[str, Any]:
    hours = segments(args.peak_rate, args.day_minutes * 60)
    with new_stack(args, args.nodes, "clday") as stack:
        stack.up(args.operators, args.queue, args.talk, operator_life_s=args.day_minutes * 60 + 900)
        meter = CpuMeter(stack, stack.db_name)
        meter.start()
        t0 = time.time()
        first = 1
        plans = []
        for k, seg in enumerate(hours):
            time.sleep(max(0.0, t0 + seg.start_s - time.time()))
            # SIPp's -r is in tenths of a call per second: an hour's calls come at >= 0.1/s.
            plan = plan_for(args, seg.calls, max(0.1, seg.rate), first, f"-h{seg.hour:02d}")
            proc = stack.start_callers(
                plan, sip_port=args.port_base + 1000 + k, media_port=args.port_base + 1100 + 4 * k
            )
            stack.add_carrier(proc)
            plans.append((seg, plan, proc))
            log(f"hour {seg.hour:02d}: {seg.calls} calls at {seg.rate:.2f}/s")
            first += seg.calls
        for _, plan, proc in plans:
            try:
                proc.wait(
                    timeout=max(10.0, t0 + args.day_minutes * 60 + plan.budget_s - time.time())
                )
            except subprocess.TimeoutExpired:
                proc.kill()
        meter.stop()
        answered = {
            n
            for _, p, _ in plans
            for n in answered_numbers(read_log_lines(stack.caller_file("logs.log", p.tag)))
        }
        wait_for_rows(stack.db_url, answered, args.settle)
        rows = day_rows(stack.db_url)
        per_hour = []
        for seg, plan, _ in plans:
            mine = [rows[n] for n in plan.numbers if n in rows]
            per_hour.append({"hour": seg.hour, "calls": seg.calls, **service(mine, args.sla)})
        usage = meter.window(t0 + 5, t0 + args.day_minutes * 60)
        return {
            "hours": per_hour,
            "total": service(list(rows.values()), args.sla),
            # Operators are pinned to home nodes: each node's queue has only its own.
            "by_node": {
                node: service([r for r in rows.values() if str(r["node"]) == node], args.sla)
                for node in sorted({str(r["node"]) for r in rows.values()})
            },
            "placed": sum(s.calls for s in hours),
            "cpu_by_part": parts(usage["cpu_pct"]),
            "machine_busy_pct": usage["machine_busy_pct"],
            "members_per_node": stack.members,
            "nodes_served": node_split(stack.db_url, 1, first - 1),
        }


def day_rows(db_url: str) -> dict[str, dict[str, Any]]:
    from sqlalchemy import create_engine, text

    sql = (
        "SELECT caller_number, outcome, queue_joined_at, answered_at, node FROM calls"
        " WHERE caller_number LIKE :p"
    )
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            return {
                r["caller_number"]: dict(r)
                for r in conn.execute(text(sql), {"p": CALLER_PREFIX + "%"}).mappings()
            }
    finally:
        engine.dispose()


def service(rows: list[dict[str, Any]], sla_s: float) -> dict[str, Any]:
    """Of the callers who reached the queue: answered within `sla_s` of joining it (the
    service level, over all who joined), abandoned (left unanswered), and the wait."""
    from call_router.outcomes import MISSED_OUTCOMES

    queued = [r for r in rows if r["queue_joined_at"] is not None]
    waits = [
        (r["answered_at"] - r["queue_joined_at"]).total_seconds()
        for r in queued
        if r["answered_at"] is not None
    ]
    within = sum(1 for w in waits if w <= sla_s)
    missed = sum(1 for r in queued if r["outcome"] in MISSED_OUTCOMES)
    return {
        "logged": len(rows),
        "queued": len(queued),
        "answered": len(waits),
        "sla_pct": round(100 * within / len(queued), 1) if queued else None,
        "abandoned_pct": round(100 * missed / len(queued), 1) if queued else None,
        "wait_s_p50": _r(percentile(waits, 0.5)),
        "wait_s_p95": _r(percentile(waits, 0.95)),
        "outcomes": dict(Counter(str(r["outcome"]) for r in rows)),
    }


# --- main ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("what", choices=("scale", "failover", "day"))
    ap.add_argument("--nodes", default=None, help="scale: 1,2,3; failover/day: one count (2)")
    ap.add_argument("--rates", default="3,6", help="scale: new calls/s of each step")
    ap.add_argument("--step", type=float, default=30, help="scale: seconds of new calls a step")
    ap.add_argument("--rate", type=float, default=3, help="failover: new calls/s")
    ap.add_argument("--seconds", type=float, default=60, help="failover: seconds of new calls")
    ap.add_argument("--kill-at", type=float, default=25, help="failover: stop-node 1 after s")
    ap.add_argument("--day-minutes", type=float, default=4, help="day: the 24 h squeezed into")
    ap.add_argument("--peak-rate", type=float, default=1.5, help="day: calls/s at 09:00")
    ap.add_argument("--sla", type=float, default=10, help="day: answered within s of queueing")
    ap.add_argument("--operators", type=int, default=None, help="operators (scale: 120, day: 6)")
    ap.add_argument("--talk", type=float, default=None, help="s an operator talks (2; day: 8)")
    ap.add_argument("--patience", type=float, default=30, help="caller's max s after the answer")
    ap.add_argument("--digit", default="2")
    ap.add_argument("--queue", default="electricity")
    ap.add_argument("--wrapup", type=int, default=1, help="HOTLINE_WRAPUP_SECONDS")
    ap.add_argument("--port-base", type=int, default=PORT_BASE)
    ap.add_argument("--settle", type=float, default=60, help="max s for the call rows")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    day_run = args.what == "day"
    args.nodes = args.nodes or ("1,2,3" if args.what == "scale" else "2")
    if args.what != "scale":
        args.nodes = int(args.nodes)
    args.operators = args.operators or (6 if day_run else 120)
    args.talk = args.talk if args.talk is not None else (8.0 if day_run else 2.0)
    os.environ["HOTLINE_WRAPUP_SECONDS"] = str(args.wrapup)
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    run: Callable[[argparse.Namespace], dict[str, Any]] = {
        "scale": scale,
        "failover": failover,
        "day": day,
    }[args.what]
    results = run(args)
    results |= {
        "command": " ".join(["bench/cluster/run.py", *sys.argv[1:]]),
        "started": started.isoformat(timespec="seconds"),
        "params": {k: v for k, v in vars(args).items() if k != "json"},
        "loadavg_before": load_before,
        "machine": machine(),
    }
    print(json.dumps(results, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
