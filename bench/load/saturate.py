"""Saturation ramp: calls per second through the real (sandbox) Asterisk until something gives.

One stack (``hotline up`` on its own ports, a fresh database, as ``run.py``), the bench operators
registered once; then one SIPp carrier per step at a higher new-call rate (``--rates``), each
placing ``rate × --step`` calls with their own caller numbers. After each step: achieved rate,
completion, what became of every caller (operator answered, SIP error, never answered, AGI
fail-safe, hung up in the menu), menu time (AGI arrival → queue join, from the call log), AMI
event → row lag, INVITE → 200 OK, CPU % of one core of every part (asterisk, agi, router,
dashboard, our PostgreSQL backends, both SIPp processes) and of the whole machine, load average,
Asterisk's warnings. The ramp stops at the first step that is not healthy
(bench/load/saturation.py) and names the part that saturated.

    .venv/bin/python bench/load/saturate.py --port-base 20000 --rates 10,15,20,30,40 \\
        --json bench/load/results/saturation-1.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from bench.callstack import (  # noqa: E402
    AMI_KINDS,
    CALLER_PREFIX,
    CallerPlan,
    Stack,
    answered_numbers,
    log,
    machine,
    percentile,
    read_log_lines,
    wait_for_rows,
    write_lags,
)
from bench.load.saturation import (
    Limits,
    caller_problems,
    creation_rate,
    judge,
    log_problems,
)  # noqa: E402

PORT_BASE = 25000
# Asterisk's RTP ports: base+100..base+999 (450 channels: ~40 calls/s in menu + talk);
# SIPp's media ports out of that range.
RTP_END = 999
MEDIA_PORTS = (20, 30)


# --- CPU of every part, once a second ----------------------------------------------------------


def machine_jiffies() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot, from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])
    return total - idle, total


class CpuMeter(threading.Thread):
    """Every second: CPU seconds used so far by each part (a process and its children; processes
    that come and go are summed by their own deltas), the machine's busy/total jiffies, and the
    current SIPp carrier's created/open calls."""

    def __init__(self, stack: Stack, db_name: str | None) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.db_name = db_name
        self.samples: list[dict[str, Any]] = []
        self.stats_file: Path | None = None
        self._last: dict[int, float] = {}
        self._total: dict[str, float] = {}
        self._last_wait: dict[int, float] = {}
        self._wait: dict[str, float] = {}
        self._halt = threading.Event()

    def families(self) -> dict[str, list[int]]:
        import psutil  # type: ignore[import-untyped]

        roots = dict(self.stack.pids)
        if self.stack.op_proc is not None:
            roots["sipp_operators"] = self.stack.op_proc.pid
        if self.stack.call_proc is not None and self.stack.call_proc.poll() is None:
            roots["sipp_callers"] = self.stack.call_proc.pid
        out: dict[str, list[int]] = {}
        for name, pid in roots.items():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                out[name] = [pid, *(c.pid for c in proc.children(recursive=True))]
        if self.db_name:  # our database's backends ("postgres: postgres <db> 127.0.0.1(...)")
            out["postgres"] = [
                p.pid
                for p in psutil.process_iter(["name", "cmdline"])
                if p.info["name"] == "postgres"
                and self.db_name in " ".join(p.info["cmdline"] or ())
            ]
        return out

    def measure(self) -> None:
        import psutil

        for name, pids in self.families().items():
            self._total.setdefault(name, 0.0)  # named even before its first delta
            self._wait.setdefault(name, 0.0)
            for pid in pids:
                try:
                    t = psutil.Process(pid).cpu_times()
                except psutil.Error:
                    continue
                add_delta(self._total, self._last, name, pid, t.user + t.system)
                waited = runqueue_wait_s(pid)
                if waited is not None:
                    add_delta(self._wait, self._last_wait, name, pid, waited)
        busy, total = machine_jiffies()
        stat = sipp_stat(self.stats_file) if self.stats_file else {}
        self.samples.append(
            {
                "t": time.time(),
                "cpu": dict(self._total),
                "wait": dict(self._wait),
                "machine": (busy, total),
                "pressure": cpu_pressure_s(),
                "created": stat.get("TotalCallCreated"),
                "open": stat.get("CurrentCall"),
            }
        )

    def run(self) -> None:
        while not self._halt.is_set():
            with contextlib.suppress(Exception):
                self.measure()
            self._halt.wait(1.0)

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=5)

    def window(self, start: float, end: float) -> dict[str, Any]:
        """In [start, end]: CPU % of one core of each part, the % of the time its threads waited
        for a CPU (run queue; a one-thread process that used 20 % and waited 75 % wanted 95 %),
        the whole machine's busy %, and the % of the time some task waited for a CPU (PSI)."""
        inside = [s for s in self.samples if start <= s["t"] <= end]
        if len(inside) < 2:
            return {"cpu_pct": {}, "runqueue_wait_pct": {}, "machine_busy_pct": 0.0}
        a, b = inside[0], inside[-1]
        wall = b["t"] - a["t"]

        def pct(key: str) -> dict[str, float]:
            return {
                n: round(100 * (b[key].get(n, 0.0) - a[key].get(n, 0.0)) / wall, 1) for n in b[key]
            }

        busy = b["machine"][0] - a["machine"][0]
        total = b["machine"][1] - a["machine"][1]
        pressure = None
        if a["pressure"] is not None and b["pressure"] is not None:
            pressure = round(100 * (b["pressure"] - a["pressure"]) / wall, 1)
        return {
            "cpu_pct": pct("cpu"),
            "runqueue_wait_pct": pct("wait"),
            "machine_busy_pct": round(100 * busy / max(1, total), 1),
            "cpu_pressure_some_pct": pressure,
        }


def add_delta(
    totals: dict[str, float], last: dict[int, float], name: str, pid: int, value: float
) -> None:
    """Add a process's growth of a cumulative counter since the last look to its part's total."""
    before = last.get(pid)
    last[pid] = value
    if before is not None and value >= before:
        totals[name] = totals.get(name, 0.0) + value - before


def runqueue_wait_s(pid: int) -> float | None:
    """Seconds the process's threads have waited on a run queue for a CPU (schedstat)."""
    total = 0
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int((task / "schedstat").read_text().split()[1])
    except OSError:
        return None
    return total / 1e9


def cpu_pressure_s() -> float | None:
    """PSI: seconds during which some task waited for a CPU (since boot)."""
    try:
        line = Path("/proc/pressure/cpu").read_text().splitlines()[0]
        return int(line.rsplit("total=", 1)[1]) / 1e6
    except (OSError, IndexError, ValueError):
        return None


def sipp_stat(path: Path) -> dict[str, Any]:
    """The last line of a SIPp -trace_stat file, by column name."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return {}
    if len(lines) < 2:
        return {}
    out: dict[str, Any] = dict(zip(lines[0].split(";"), lines[-1].split(";"), strict=False))
    for key in ("TotalCallCreated", "CurrentCall", "FailedCall(C)", "SuccessfulCall(C)"):
        with contextlib.suppress(KeyError, ValueError):
            out[key] = int(out[key])
    return out


def sipp_duration_ms(value: str | None) -> float | None:
    """SIPp's response-time format (HH:MM:SS:mmmuuu or seconds) in milliseconds."""
    if not value:
        return None
    try:
        parts = value.split(":")
        if len(parts) == 4:
            h, m, s, frac = parts
            return (int(h) * 3600 + int(m) * 60 + int(s)) * 1000 + int(frac) / 1000
        return float(value) * 1000
    except ValueError:
        return None


def worst_second(path: Path) -> float | None:
    """The slowest one-second average of INVITE → 200 OK in a SIPp -trace_stat file (ms)."""
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
        col = lines[0].split(";").index("ResponseTimeanswer(P)")
    except (OSError, IndexError, ValueError):
        return None
    values = [sipp_duration_ms(line.split(";")[col]) for line in lines[1:]]
    return max((v for v in values if v is not None), default=None)


def asterisk_snapshot(settings: Any) -> dict[str, Any]:
    """Asterisk's own view at full load: channels up, operators' contacts not reachable, and the
    task-processor queues (its work queues; a growing one is where Asterisk falls behind)."""
    from hotline.asterisk.sandbox import Asterisk

    ast = Asterisk(settings)
    out: dict[str, Any] = {"t": round(time.time(), 1)}
    with contextlib.suppress(Exception):
        out["channels"] = ast.cli("core show channels count").strip().splitlines()[:2]
    with contextlib.suppress(Exception):
        contacts = ast.cli("pjsip show contacts")
        out["contacts_unreachable"] = sum(
            1 for line in contacts.splitlines() if "Contact:" in line and "Unavail" in line
        )
    with contextlib.suppress(Exception):
        rows: list[dict[str, Any]] = []
        for line in ast.cli("core show taskprocessors").splitlines():
            f = line.split()
            if len(f) >= 6 and f[1].isdigit() and f[2].isdigit() and f[3].isdigit():
                rows.append({"name": f[0], "in_queue": int(f[2]), "max_depth": int(f[3])})
        out["taskprocessors_in_queue"] = sorted(rows, key=lambda r: -int(r["in_queue"]))[:5]
        out["taskprocessors_max_depth"] = sorted(rows, key=lambda r: -int(r["max_depth"]))[:5]
    return out


# --- the call log of one step ----------------------------------------------------------------


def step_rows(db_url: str, first: int, last: int) -> list[dict[str, Any]]:
    """Call rows of caller numbers first..last: outcome, queue, menu seconds (AGI arrival →
    queue join), and whether the dialplan's fail-safe took the call (timeline agi_failed)."""
    from sqlalchemy import create_engine, text

    if db_url.startswith("sqlite"):
        menu = "(julianday(c.queue_joined_at) - julianday(c.started_at)) * 86400.0"
    else:
        menu = "EXTRACT(EPOCH FROM c.queue_joined_at - c.started_at)"
    sql = (
        f"SELECT c.caller_number, c.caller_number_raw, c.outcome, c.queue, c.answered_at,"
        f" c.menu_ended_at, {menu} AS menu_s,"
        " EXISTS (SELECT 1 FROM call_events e WHERE e.call_id = c.id"
        "   AND e.kind = 'agi_failed') AS fail_safe"
        " FROM calls c WHERE c.caller_number LIKE :p OR c.caller_number_raw LIKE :p"
    )
    wanted = {f"{CALLER_PREFIX}{i:05d}" for i in range(first, last + 1)}
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            out = []
            for r in conn.execute(text(sql), {"p": CALLER_PREFIX + "%"}).mappings():
                number = r["caller_number_raw"] or r["caller_number"]
                if not number.startswith(CALLER_PREFIX):
                    number = r["caller_number"]
                if number in wanted:
                    out.append({**dict(r), "number": number})
            return out
    finally:
        engine.dispose()


def asterisk_warnings(path: Path, offset: int) -> tuple[int, Counter[str]]:
    """New WARNING/ERROR lines of Asterisk's `messages` log after `offset`, by source."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text_ = f.read().decode(errors="replace")
            end = f.tell()
    except OSError:
        return offset, Counter()
    kinds: Counter[str] = Counter()
    for line in text_.splitlines():
        for level in ("WARNING", "ERROR"):
            if f"] {level}[" in line or f" {level}[" in line:
                # "[date] WARNING[tid] file.c: message": keep level + source file
                after = line.split(f"{level}[", 1)[1].split("]", 1)[1]
                # " [C-0000002a] file.c: ..." (a call's id) or " file.c: ..."
                after = after.strip()
                if after.startswith("[C-"):
                    after = after.split("]", 1)[1].strip()
                source = after.split(":", 1)[0]
                kinds[f"{level} {source}"] += 1
    return end, kinds


# --- the ramp ----------------------------------------------------------------------------------


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--rates", default="10,15,20,30,40", help="new calls/s of each step")
    ap.add_argument("--step", type=float, default=60, help="seconds of new calls per step")
    ap.add_argument("--operators", type=int, default=200, help="bench operators answering")
    ap.add_argument("--talk", type=float, default=2, help="seconds an operator talks")
    ap.add_argument("--wrapup", type=int, default=1, help="HOTLINE_WRAPUP_SECONDS (bench: short)")
    ap.add_argument("--patience", type=float, default=30, help="caller's max seconds on line")
    ap.add_argument("--dtmf-delay", type=float, default=1.5)
    ap.add_argument("--audio", type=float, default=0.5)
    ap.add_argument("--digit", default="2")
    ap.add_argument("--queue", default="electricity")
    ap.add_argument("--db", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument("--port-base", type=int, default=PORT_BASE, help="ports base..base+999")
    ap.add_argument("--settle", type=float, default=20, help="max s for a step's call rows")
    ap.add_argument(
        "--final-settle", type=float, default=180, help="max s for the whole call log at the end"
    )
    ap.add_argument("--all-steps", action="store_true", help="do not stop at the first bad step")
    ap.add_argument("--json", type=Path, help="also write the results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the state dir, logs, database")
    ap.add_argument(
        "--rejudge",
        type=Path,
        help="no run: judge the steps recorded in this JSON again (current rules), rewrite it",
    )
    args = ap.parse_args()
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    limits = Limits()
    if args.rejudge:
        recorded = json.loads(args.rejudge.read_text())
        mark_problems(recorded["steps"], limits)
        recorded["limits"] = asdict(limits)
        recorded["verdict"] = judge(recorded["steps"], limits)
        args.rejudge.write_text(json.dumps(recorded, indent=2, default=str))
        print(json.dumps(recorded["verdict"], indent=2))
        return 0

    started = datetime.now(UTC)
    os.environ["HOTLINE_WRAPUP_SECONDS"] = str(args.wrapup)
    results: dict[str, Any] = {
        "command": " ".join(["bench/load/saturate.py", *sys.argv[1:]]),
        "started": started.isoformat(timespec="seconds"),
        "params": vars(args) | {"json": str(args.json) if args.json else None},
        "limits": asdict(limits),
        "loadavg_before": os.getloadavg(),
        "steps": [],
    }
    with Stack.from_args(
        "sat",
        args,
        queue_timeout=int(args.patience) + 30,
        rtp_end=RTP_END,
        media_ports=MEDIA_PORTS,
    ) as stack:
        life = sum(args.step + args.patience + 60 for _ in rates) + 600
        stack.up(args.operators, args.queue, args.talk, operator_life_s=life)
        results["operators_registered"] = stack.registered
        meter = CpuMeter(stack, stack.db_name)
        meter.start()
        ast_log = stack.settings.asterisk_dir / "log" / "messages"
        ast_offset = ast_log.stat().st_size if ast_log.exists() else 0
        first = 1
        steps: list[dict[str, Any]] = results["steps"]
        done: list[tuple[CallerPlan, float, list[list[str]], dict[str, Any], float, float]] = []
        warnings: list[Counter[str]] = []
        loads: list[tuple[float, float, float]] = []
        baseline: float | None = None
        for rate in rates:
            calls = max(1, round(rate * args.step))
            plan = CallerPlan.from_args(
                args,
                calls=calls,
                rate=rate,
                concurrent=int(rate * (args.patience + 15)) + 50,
                first=first,
                tag=f"-r{rate:g}",
                recv_timeout=args.patience,
            )
            loads.append(os.getloadavg())
            log(f"step {rate:g} calls/s: {calls} calls, numbers {first}..{first + calls - 1}")
            t0 = time.time()
            stack.start_callers(plan)
            meter.stats_file = stack.caller_file("stats.csv", plan.tag)
            # Asterisk's queues when the step is at full load (its last calls being made).
            snapshot: dict[str, Any] = {}
            timer = threading.Timer(
                max(1.0, calls / rate - 2),
                lambda into=snapshot: into.update(asterisk_snapshot(stack.settings)),
            )
            timer.start()
            sipp_exit = stack.wait_callers(plan)
            t1 = time.time()
            timer.cancel()
            stats = sipp_stat(meter.stats_file) | {
                "exit": sipp_exit,
                "load": os.getloadavg(),
                "asterisk": snapshot,
            }
            lines = read_log_lines(stack.caller_file("logs.log", plan.tag))
            wait_for_rows(stack.db_url, set(answered_numbers(lines)), args.settle)
            ast_offset, new_warnings = asterisk_warnings(ast_log, ast_offset)
            warnings.append(new_warnings)
            done.append((plan, rate, lines, stats, t0, t1))
            step = analyse_step(stack, meter, *done[-1], args, new_warnings, loads[-1])
            if baseline is None:
                baseline = step["menu_s"].get("p50")
            problems = caller_problems(step, baseline, limits)
            log(f"step {rate:g}: {json.dumps(summary(step))}")
            behind = log_problems(step) or "fine"
            log(f"step {rate:g}: callers {problems or 'fine'}; call log {behind}")
            first += calls
            if problems and not args.all_steps:
                log("stop: the callers felt it")
                break
        meter.stop()
        # The call log may still be catching up: wait for every answered call's row, then
        # measure every step again from the complete log.
        answered = {n for d in done for n in answered_numbers(d[2])}
        log(f"waiting up to {args.final_settle:g} s for the call log of {len(answered)} calls")
        wait_for_rows(stack.db_url, answered, args.final_settle)
        for d, w, load in zip(done, warnings, loads, strict=True):
            steps.append(analyse_step(stack, meter, *d, args, w, load))
        mark_problems(steps, limits)
    results["verdict"] = judge(steps, limits)
    results["machine"] = machine()
    print(json.dumps(results, indent=2, default=str))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


def mark_problems(steps: list[dict[str, Any]], limits: Limits) -> None:
    first_menu = steps[0]["menu_s"].get("p50") if steps else None
    for step in steps:
        step["caller_problems"] = caller_problems(step, first_menu, limits)
        step["log_problems"] = log_problems(step, limits)


def analyse_step(
    stack: Stack,
    meter: CpuMeter,
    plan: CallerPlan,
    rate: float,
    lines: list[list[str]],
    stats: dict[str, Any],
    t0: float,
    t1: float,
    args: argparse.Namespace,
    warnings: Counter[str],
    load_before: tuple[float, float, float],
) -> dict[str, Any]:
    answered = set(answered_numbers(lines))
    rejected = Counter(f[3] if len(f) > 3 else "?" for f in lines if f[0] == "REJECTED")
    rejected_numbers = {f[1] for f in lines if f[0] == "REJECTED"}
    ended_ok = {f[1] for f in lines if f[0] in ("LOCAL_BYE", "REMOTE_BYE")}
    planned = set(plan.numbers)

    placed = len(answered) + len(rejected_numbers)
    achieved = creation_rate(
        [(s["t"], s["created"]) for s in meter.samples if t0 <= s["t"] and s["created"]],
        plan.calls,
    )
    open_calls = [s["open"] for s in meter.samples if t0 <= s["t"] <= t1 and s["open"] is not None]

    # CPU in the steady part: after the first calls reached the queue, until the last was made.
    warm = min(10.0, args.step / 3)
    usage = meter.window(t0 + warm, t0 + plan.calls / rate)
    cpu = usage["cpu_pct"]

    rows = step_rows(stack.db_url, plan.first, plan.first + plan.calls - 1)
    by_number: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_number.setdefault(r["number"], []).append(r)
    outcomes = Counter(str(r["outcome"]) for r in rows)
    queues = Counter(str(r["queue"]) for r in rows)
    menu = [float(r["menu_s"]) for r in rows if r["menu_s"] is not None and not r["fail_safe"]]
    fail_safe = sum(1 for r in rows if r["fail_safe"])
    operator_answered = sum(1 for r in rows if r["answered_at"] is not None)

    events, _ = write_lags(stack.db_url)
    lags = [lag for kind, lag, at in events if kind in AMI_KINDS and t0 <= at <= t1]

    def q(values: list[float], p: float) -> float | None:
        v = percentile(values, p)
        return None if v is None else round(v, 3)

    return {
        "target_rate": rate,
        "achieved_rate": achieved,
        "planned": plan.calls,
        "placed": placed,
        "answered_by_ivr": len(answered),
        "rejected": dict(rejected),
        "not_answered": len(planned - answered - rejected_numbers),
        "completed": len(ended_ok),
        "completion_pct": round(100 * len(ended_ok) / max(1, plan.calls), 2),
        "operator_answered": operator_answered,
        "fail_safe": fail_safe,
        "outcomes": dict(outcomes),
        "queues": dict(queues),
        "lost_rows": len([n for n in answered if n not in by_number]),
        "menu_s": {"n": len(menu), "p50": q(menu, 0.5), "p95": q(menu, 0.95), "max": q(menu, 1)},
        "ami_lag_s": {"n": len(lags), "p50": q(lags, 0.5), "p95": q(lags, 0.95), "max": q(lags, 1)},
        "invite_to_200_ms": sipp_duration_ms(stats.get("ResponseTimeanswer(C)")),
        "invite_to_200_ms_worst_second": worst_second(stack.caller_file("stats.csv", plan.tag)),
        "sipp_failed_calls": stats.get("FailedCall(C)"),
        "sipp_exit": stats.get("exit"),
        "open_calls_peak": max(open_calls) if open_calls else None,
        **usage,
        "ours_pct_of_one_core": round(sum(cpu.values()), 1),
        "loadavg_before": load_before,
        "loadavg_after": stats.get("load"),
        "asterisk_warnings": dict(warnings.most_common(8)),
        "asterisk_at_full_load": stats.get("asterisk"),
        "duration_s": round(t1 - t0, 1),
        "window": [round(t0, 1), round(t1, 1)],
    }


def summary(step: dict[str, Any]) -> dict[str, Any]:
    keys = (
        "achieved_rate",
        "completion_pct",
        "operator_answered",
        "fail_safe",
        "rejected",
        "not_answered",
        "menu_s",
        "ami_lag_s",
        "invite_to_200_ms",
        "cpu_pct",
        "runqueue_wait_pct",
        "machine_busy_pct",
        "cpu_pressure_some_pct",
    )
    return {k: step[k] for k in keys}


if __name__ == "__main__":
    sys.exit(main())
