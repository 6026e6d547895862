"""Load benchmark: many concurrent calls through the real (sandbox) Asterisk.

One SIPp process is the carrier (endpoint ``pstn``): ``-r`` new calls/s, ``-l`` calls at once,
``-m`` calls in all, a unique caller number per call from an injection file, the caller's
audio + keypad digit as RFC 2833 in one RTP pcap. One more SIPp process registers every bench
operator (digest auth) and answers the queue calls (``-oocsf``), talks, hangs up.

The stack is ``hotline up`` on its own ports (base 25000, ``--port-base``) with a temporary
state dir and a fresh database (PostgreSQL by default, dropped at the end). Measured: new
calls/s sustained, calls in progress (SIPp's open calls: IVR + queue + talking), completion %,
AMI-event → database-row lag (a trigger, created by the bench in its own database only, stamps
``clock_timestamp()`` on every call-log write; the row's ``at`` is the AMI event's own
Timestamp), CPU and memory of asterisk + FastAGI + router per call, lost/duplicated call-log
rows. Everything is torn down at the end, also on failure or Ctrl-C.

    .venv/bin/python bench/load/run.py --rate 10 --calls 1200 --concurrent 200 --operators 100
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.callstack import (  # noqa: E402
    AMI_KINDS,
    MAX_CALLS,
    CallerPlan,
    Sampler,
    Stack,
    answered_numbers,
    end_lag_summary,
    lag_summary,
    log,
    machine,
    ms,
    outcome_counts,
    percentile,
    read_log_lines,
    row_faults,
    wait_for_rows,
    write_lags,
)

PORT_BASE = 25000


# --- the run ------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rate", type=float, default=10, help="new calls per second (SIPp -r)")
    ap.add_argument("--calls", type=int, default=600, help="calls in all (SIPp -m)")
    ap.add_argument("--concurrent", type=int, default=200, help="max calls at once (SIPp -l)")
    ap.add_argument("--operators", type=int, default=100, help="bench operators answering")
    ap.add_argument("--talk", type=float, default=5, help="seconds an operator talks, then BYE")
    ap.add_argument(
        "--patience",
        type=float,
        default=15,
        help="seconds after the answer a caller stays at most (then BYE, abandoned in queue)",
    )
    ap.add_argument(
        "--dtmf-delay", type=float, default=1.5, help="seconds after answer before media"
    )
    ap.add_argument(
        "--audio", type=float, default=0.5, help="seconds of caller 'voice' before the key"
    )
    ap.add_argument("--digit", default="2", help="menu key the callers press (2 = electricity)")
    ap.add_argument("--queue", default="electricity", help="queue the operators serve")
    ap.add_argument(
        "--wrapup", type=int, help="operator after-call seconds (HOTLINE_WRAPUP_SECONDS)"
    )
    ap.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument(
        "--port-base", type=int, default=PORT_BASE, help="stack ports base..base+600 (127.0.0.1)"
    )
    ap.add_argument(
        "--batch", type=int, default=200, help="router: AMI events per transaction (1: one each)"
    )
    ap.add_argument(
        "--writers", type=int, default=4, help="router: parallel writer lanes (PostgreSQL)"
    )
    ap.add_argument(
        "--no-event-filter",
        action="store_true",
        help="router's AMI user gets every event (no manager.conf eventfilter), as before",
    )
    ap.add_argument("--settle", type=float, default=90, help="max seconds to wait for the call log")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--trace", action="store_true", help="SIPp -trace_msg (with --keep: debugging)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary state dir (logs)")
    args = ap.parse_args()
    if not 1 <= args.calls <= MAX_CALLS:
        ap.error(f"--calls: 1 to {MAX_CALLS} (one caller number each)")

    started_wall = datetime.now(UTC)
    # The router's write path: --batch 1 --no-event-filter is the pre-batching router.
    os.environ["HOTLINE_AMI_BATCH_SIZE"] = str(args.batch)
    os.environ["HOTLINE_AMI_EVENT_FILTER"] = "false" if args.no_event_filter else "true"
    os.environ["HOTLINE_AMI_WRITERS"] = str(args.writers)
    if args.wrapup is not None:
        os.environ["HOTLINE_WRAPUP_SECONDS"] = str(args.wrapup)
    plan = CallerPlan.from_args(args, calls=args.calls)
    with Stack.from_args("load", args, queue_timeout=int(args.patience) + 60) as stack:
        stack.up(
            args.operators,
            args.queue,
            args.talk,
            operator_life_s=args.calls / args.rate + args.patience + args.settle + 600,
        )
        sampler = Sampler(stack.pids, stack.caller_stats)
        sampler.start()
        time.sleep(3)  # idle baseline
        log(f"placing {args.calls} calls at {args.rate}/s (limit {args.concurrent} at once) ...")
        t0 = time.time()
        stack.start_callers(plan)
        call_exit = stack.wait_callers(plan)
        t1 = time.time()
        log(f"callers done: sipp exit {call_exit} after {t1 - t0:.1f}s")

        # The call log catches up: every answered call must get its row with ended_at + outcome.
        caller_lines = read_log_lines(stack.caller_log)
        rows = wait_for_rows(stack.db_url, set(answered_numbers(caller_lines)), args.settle)
        t_settled = time.time()
        time.sleep(2)
        sampler.stop()
        results = analyse(
            args, stack.db_url, caller_lines, plan.numbers, rows, sampler, t0, t1, t_settled
        )
        results["sipp_exit"] = call_exit
        results["operators_registered"] = stack.registered
        results["machine"] = machine()
        results["started"] = started_wall.isoformat(timespec="seconds")
        results["command"] = " ".join(["bench/load/run.py", *sys.argv[1:]])
        print_results(results)
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        ok = results["lost_rows"] == 0 and results["duplicate_rows"] == 0
        return 0 if ok else 1


def analyse(
    args: argparse.Namespace,
    db_url: str,
    caller_lines: list[list[str]],
    numbers: list[str],
    rows: dict[str, list[dict[str, Any]]],
    sampler: Sampler,
    t0: float,
    t1: float,
    t_settled: float,
) -> dict[str, Any]:
    answered = answered_numbers(caller_lines)
    rejected = [f[1] for f in caller_lines if f[0] == "REJECTED"]
    ended_ok = {f[1] for f in caller_lines if f[0] in ("LOCAL_BYE", "REMOTE_BYE")}
    remote = sum(1 for f in caller_lines if f[0] == "REMOTE_BYE")
    answered_set = set(answered)
    faults = row_faults(answered_set, rows)
    lost, dup, unfinished = faults["lost"], faults["duplicated"], faults["unfinished"]
    outcomes = outcome_counts(answered_set, rows)

    # AMI event time (the row's `at`) → the moment the trigger saw the row written.
    events, end_lag = write_lags(db_url)
    lag_by_kind: dict[str, list[float]] = {}
    timeline: dict[int, list[float]] = {}
    for kind, lag, at in events:
        lag_by_kind.setdefault(kind, []).append(lag)
        if kind in AMI_KINDS:
            timeline.setdefault(int((at - t0) // 15) * 15, []).append(lag)
    ami_lags = [v for k, vs in lag_by_kind.items() if k in AMI_KINDS for v in vs]

    # Calls in progress (SIPp's open calls) and the rate SIPp actually reached.
    open_series = [s["open_calls"] for s in sampler.samples if s["open_calls"] is not None]
    steady = [
        s["open_calls"]
        for s in sampler.samples
        if s["open_calls"] is not None
        and t0 + args.patience + 5 <= s["t"] <= t0 + args.calls / args.rate
    ]
    duration = t1 - t0
    t_all_created = next((s["t"] for s in sampler.samples if (s["created"] or 0) >= args.calls), t1)
    placed = len(answered) + len(rejected)

    # CPU seconds and RSS per process, call phase only.
    first = next((s for s in sampler.samples if s["t"] >= t0), sampler.samples[0])
    base = sampler.samples[0]
    last = min(sampler.samples, key=lambda s: abs(s["t"] - t_settled))
    cpu: dict[str, Any] = {}
    total_cpu = 0.0
    for name in base["procs"]:
        used = last["procs"][name][0] - first["procs"][name][0]
        total_cpu += used
        peak_rss = max(s["procs"][name][1] for s in sampler.samples)
        cpu[name] = {
            "cpu_s": round(used, 2),
            "cpu_pct_of_one_core": round(100 * used / max(1e-9, last["t"] - first["t"]), 1),
            "rss_idle_mb": round(base["procs"][name][1] / 2**20, 1),
            "rss_peak_mb": round(peak_rss / 2**20, 1),
        }
    peak_open = max(open_series) if open_series else 0
    rss_growth = sum(
        max(s["procs"][n][1] for s in sampler.samples) - base["procs"][n][1] for n in base["procs"]
    )

    return {
        "params": {
            k: getattr(args, k)
            for k in (
                "rate",
                "calls",
                "concurrent",
                "operators",
                "talk",
                "patience",
                "wrapup",
                "db",
                "batch",
                "writers",
                "no_event_filter",
            )
        },
        "placed": placed,
        "answered_by_ivr": len(answered),
        "rejected": len(rejected),
        "not_answered": len(set(numbers) - answered_set),
        "completed": len(ended_ok),
        "completion_pct": round(100 * len(ended_ok) / max(1, args.calls), 2),
        "ended_by_asterisk": remote,
        "duration_s": round(duration, 1),
        "new_calls_per_s": round(placed / max(1e-9, t_all_created - t0), 2),
        "in_progress_peak": peak_open,
        "in_progress_steady_median": percentile([float(v) for v in steady], 0.5),
        "outcomes": outcomes,
        "lost_rows": len(lost),
        "duplicate_rows": len(dup),
        "unfinished_rows": len(unfinished),
        "lost_examples": lost[:5],
        "ami_lag_ms": lag_summary(ami_lags),
        "ami_lag_p95_ms_by_kind": {
            k: ms(percentile(v, 0.95)) for k, v in sorted(lag_by_kind.items()) if k in AMI_KINDS
        },
        # Per 15 s of AMI event time from the first call: events written, their p95 lag (ms).
        "ami_lag_timeline": [
            {"from_s": k, "events": len(v), "p95_ms": ms(percentile(v, 0.95))}
            for k, v in sorted(timeline.items())
        ],
        "hangup_to_ended_at_row_ms": end_lag_summary(end_lag),
        "processes": cpu,
        "cpu_ms_per_call": round(1000 * total_cpu / max(1, placed), 1),
        "cpu_pct_of_one_core_total": round(sum(v["cpu_pct_of_one_core"] for v in cpu.values()), 1),
        "rss_growth_kb_per_call_in_progress": round(rss_growth / 1024 / max(1, peak_open), 1),
    }


def print_results(r: dict[str, Any]) -> None:
    print(json.dumps(r, indent=2, default=str))


if __name__ == "__main__":
    sys.exit(main())
