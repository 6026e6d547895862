"""Soak benchmark: a steady stream of calls through the real stack for a long time.

The same stack and SIPp machinery as bench/load (bench/callstack.py): ``hotline up`` on its
own ports (base 26000, ``--port-base``) with a temporary state dir and a fresh PostgreSQL
database, SIPp-registered operators answering, one SIPp carrier placing ``--rate`` new
calls/s for ``--minutes``. Every ``--sample-every`` s the RSS and open files of every process
(asterisk, the FastAGI server, the router, the dashboard and each of its workers) are sampled.

Reported (printed as a table, and as JSON in ``--json``): each process's RSS and open files at
the start of the steady phase (after ``--warmup`` minutes) and at its end (medians over
``--window`` s), growth % (pass line < 5 %) and the trend in MB/hour; the AMI-event → row lag
(p50/p95/max, and p95 per minute); lost / duplicated / unfinished call rows (pass line 0).

    .venv/bin/python bench/soak/run.py                       # one hour at 5 calls/s
    .venv/bin/python bench/soak/run.py --minutes 10 --warmup 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
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
    ProcSample,
    Sampler,
    Stack,
    answered_numbers,
    end_lag_summary,
    lag_summary,
    log,
    machine,
    outcome_counts,
    read_log_lines,
    row_faults,
    wait_for_rows,
    write_lags,
)
from bench.soak.metrics import (  # noqa: E402
    GROWTH_PASS_PCT,
    Phase,
    per_minute,
    process_report,
)

HERE = Path(__file__).resolve().parent
PORT_BASE = 26000


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=60, help="length of the call phase")
    ap.add_argument("--rate", type=float, default=5, help="new calls per second")
    ap.add_argument("--warmup", type=float, default=5, help="minutes before memory is a baseline")
    ap.add_argument("--window", type=float, default=60, help="seconds a start/end value spans")
    ap.add_argument("--sample-every", type=float, default=5, help="seconds between samples")
    ap.add_argument("--operators", type=int, default=100, help="bench operators answering")
    ap.add_argument("--talk", type=float, default=5, help="seconds an operator talks, then BYE")
    ap.add_argument("--patience", type=float, default=30, help="max seconds a caller stays")
    ap.add_argument("--concurrent", type=int, default=400, help="max calls at once (SIPp -l)")
    ap.add_argument("--dtmf-delay", type=float, default=1.5, help="seconds before the key")
    ap.add_argument("--audio", type=float, default=0.5, help="seconds of 'voice' before the key")
    ap.add_argument("--digit", default="2", help="menu key the callers press (2 = electricity)")
    ap.add_argument("--queue", default="electricity", help="queue the operators serve")
    ap.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument("--port-base", type=int, default=PORT_BASE, help="ports base..base+600")
    # The wait ends as soon as every answered caller's row is finished; the bound only has to
    # exceed the router's worst lag behind Asterisk (295 s on a starved machine), or a late
    # row is counted as lost.
    ap.add_argument("--settle", type=float, default=600, help="max seconds for the call log")
    ap.add_argument("--json", type=Path, help="results file (default bench/soak/results/...)")
    ap.add_argument("--trace", action="store_true", help="SIPp -trace_msg (with --keep)")
    ap.add_argument("--keep", action="store_true", help="keep the state dir and database")
    args = ap.parse_args()
    calls = round(args.minutes * 60 * args.rate)
    if not 1 <= calls <= MAX_CALLS:
        ap.error(f"--minutes x 60 x --rate: 1 to {MAX_CALLS} calls (one caller number each)")
    if args.warmup * 60 + 2 * args.window > args.minutes * 60:
        ap.error("--warmup plus two --window must fit in --minutes")
    return args


def main() -> int:
    args = parse_args()
    started_wall = datetime.now(UTC)
    plan = CallerPlan.from_args(args, calls=round(args.minutes * 60 * args.rate))
    out = args.json or HERE / "results" / f"soak-{started_wall:%Y%m%dT%H%M}.json"
    with Stack.from_args("soak", args, queue_timeout=int(args.patience) + 60) as stack:
        stack.up(
            args.operators,
            args.queue,
            args.talk,
            operator_life_s=plan.budget_s + args.settle + 600,
        )
        sampler = Sampler(stack.pids, stack.caller_stats, interval=args.sample_every)
        sampler.start()
        log(f"placing {plan.calls} calls at {args.rate}/s for {args.minutes} min ...")
        t0 = time.time()
        call_proc = stack.start_callers(plan)
        while time.time() < t0 + plan.budget_s:
            try:
                call_proc.wait(timeout=60)
                break
            except subprocess.TimeoutExpired:
                progress(sampler)
        call_exit = stack.wait_callers(plan)
        t1 = time.time()
        log(f"callers done: sipp exit {call_exit} after {t1 - t0:.1f}s")

        caller_lines = read_log_lines(stack.caller_log)
        rows = wait_for_rows(stack.db_url, set(answered_numbers(caller_lines)), args.settle)
        sampler.stop()
        phase = Phase(
            warmup_end=t0 + args.warmup * 60, end=t0 + args.minutes * 60, window=args.window
        )
        results = analyse(args, stack.db_url, caller_lines, rows, sampler.samples, t0, phase)
        results.update(
            sipp_exit=call_exit,
            call_phase_s=round(t1 - t0, 1),
            operators_registered=stack.registered,
            machine=machine(),
            started=started_wall.isoformat(timespec="seconds"),
            command=" ".join(["bench/soak/run.py", *sys.argv[1:]]),
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print_table(results)
    log(f"results: {out}")
    return 0 if results["pass"] else 1


def progress(sampler: Sampler) -> None:
    if not sampler.samples:
        return
    last = sampler.samples[-1]
    rss = ", ".join(f"{name} {v[1] / 2**20:.0f}" for name, v in last["procs"].items())
    log(f"created {last['created']}, open {last['open_calls']}; RSS MB: {rss}")


def analyse(
    args: argparse.Namespace,
    db_url: str,
    caller_lines: list[list[str]],
    rows: dict[str, list[dict[str, Any]]],
    samples: list[dict[str, Any]],
    t0: float,
    phase: Phase,
) -> dict[str, Any]:
    # Memory and open files: each process on its own, and each service with its children.
    rss: dict[str, list[tuple[float, float]]] = {}
    fds: dict[str, list[tuple[float, float]]] = {}
    totals: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        detail: list[ProcSample] = s["detail"]
        for p in detail:
            rss.setdefault(p.label, []).append((s["t"], float(p.rss)))
            if p.fds is not None:
                fds.setdefault(p.label, []).append((s["t"], float(p.fds)))
        for service, (_cpu, total) in s["procs"].items():
            totals.setdefault(service, []).append((s["t"], float(total)))
    processes = {label: process_report(rss[label], fds.get(label, []), phase) for label in rss}
    services = {name: process_report(series, [], phase) for name, series in totals.items()}
    for report in services.values():
        del report["fds_start"], report["fds_end"]
    timeline = [
        {
            "minute": round((s["t"] - t0) / 60, 2),
            "open_calls": s["open_calls"],
            "rss_mb": {p.label: round(p.rss / 2**20, 1) for p in s["detail"]},
            "fds": {p.label: p.fds for p in s["detail"]},
        }
        for s in samples
    ]

    # The call log: one finished row per answered caller; the AMI-event → row lag.
    answered = set(answered_numbers(caller_lines))
    faults = row_faults(answered, rows)
    outcomes = outcome_counts(answered, rows)
    events, end_lag = write_lags(db_url)
    ami = [(at, lag) for kind, lag, at in events if kind in AMI_KINDS]
    ami_lags = [lag for _, lag in ami]
    steady_lags = [lag for at, lag in ami if phase.warmup_end <= at <= phase.end]

    # A child that came and went (a restarted worker) has no growth of its own; its service,
    # summed over its children, must still be there at both ends.
    memory_pass = all(r["pass"] for r in processes.values() if r["growth_pct"] is not None) and all(
        r["growth_pct"] is not None for r in services.values()
    )
    rows_pass = not any(faults.values())
    return {
        "params": {
            k: getattr(args, k)
            for k in (
                "minutes",
                "rate",
                "warmup",
                "window",
                "sample_every",
                "operators",
                "talk",
                "patience",
                "concurrent",
                "db",
            )
        },
        "short_run": args.minutes < 60,
        "placed": len(answered) + sum(1 for f in caller_lines if f[0] == "REJECTED"),
        "answered_by_ivr": len(answered),
        "completed": len({f[1] for f in caller_lines if f[0] in ("LOCAL_BYE", "REMOTE_BYE")}),
        "outcomes": outcomes,
        "lost_rows": len(faults["lost"]),
        "duplicate_rows": len(faults["duplicated"]),
        "unfinished_rows": len(faults["unfinished"]),
        "row_fault_examples": {k: v[:5] for k, v in faults.items()},
        "ami_lag_ms": lag_summary(ami_lags),
        "ami_lag_ms_after_warmup": lag_summary(steady_lags),
        "ami_lag_p95_per_minute": per_minute(ami, t0),
        "hangup_to_ended_at_row_ms": end_lag_summary(end_lag),
        "growth_pass_pct": GROWTH_PASS_PCT,
        "processes": processes,
        "services": services,
        "timeline": timeline,
        "memory_pass": memory_pass,
        "rows_pass": rows_pass,
        "pass": memory_pass and rows_pass,
    }


def print_table(r: dict[str, Any]) -> None:
    p = r["params"]
    print(
        f"\nSoak: {p['minutes']} min at {p['rate']} calls/s, warm-up {p['warmup']} min"
        f"{'  (SHORT run)' if r['short_run'] else ''}"
    )
    head = ("process", "RSS start MB", "RSS end MB", "growth %", "MB/hour", "fds start→end", "")
    print(f"{head[0]:<34}{head[1]:>13}{head[2]:>11}{head[3]:>10}{head[4]:>9}{head[5]:>15}")

    def cell(v: object) -> str:
        return "-" if v is None else f"{v}"

    for label, x in sorted(r["processes"].items()):
        fds = f"{cell(x['fds_start'])}→{cell(x['fds_end'])}"
        verdict = "ok" if x["pass"] else ("FAIL" if x["growth_pct"] is not None else "n/a")
        print(
            f"{label:<34}{cell(x['rss_start_mb']):>13}{cell(x['rss_end_mb']):>11}"
            f"{cell(x['growth_pct']):>10}{cell(x['trend_mb_per_hour']):>9}{fds:>15}  {verdict}"
        )
    lag = r["ami_lag_ms"]
    print(
        f"AMI event → row lag ms: p50 {lag['p50']}  p95 {lag['p95']}  max {lag['max']}"
        f"  ({lag['n']} events)"
    )
    print(
        f"calls: {r['placed']} placed, {r['answered_by_ivr']} answered, {r['completed']} ended"
        f" cleanly; outcomes {r['outcomes']}"
    )
    print(
        f"rows lost / duplicated / unfinished: {r['lost_rows']} / {r['duplicate_rows']}"
        f" / {r['unfinished_rows']}"
    )
    print(f"memory {'PASS' if r['memory_pass'] else 'FAIL'} (growth < {r['growth_pass_pct']} %),"
          f" rows {'PASS' if r['rows_pass'] else 'FAIL'}")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
