"""FastAGI benchmark: the Hotline server and a bare-asyncio reference, side by side, one run.

Both servers run pinned to one core (`taskset -c --cpu`); the load generator (bench/agi/
loadgen.py, plays res_agi over TCP) runs pinned to the other. Phases, each against both servers:

1. rate: `--concurrency` callers with no think time for `--seconds`: sessions/s, server think
   time p50/p99 (our reply → its next command), errors; a share of callers hang up mid-menu;
   then the same with `--light` callers, and paced: `--concurrency` callers offering `--paced`
   sessions/s (thinking at the keypad), the latency at a given rate below saturation;
2. held: `--held` callers, each thinking `--think` s at every keypad prompt, arriving (by
   default) within the shortest think time, so all are in the menu at once: completed,
   errors, server RSS growth per session;
3. overload (Hotline only): a server capped at `--cap` sessions holds `--cap` callers, then
   `--over` more arrive: how fast each is answered and routed (coordinator).

    .venv/bin/python bench/agi/run.py                 # the BENCHMARKS.md run
    .venv/bin/python bench/agi/run.py --db postgres   # the call log in a fresh PostgreSQL db

Prints a table on stderr and one JSON document on stdout (also saved with `--save`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(HERE))

from loadgen import Caller, Stats, closed_loop, held, percentile  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def log(msg: str) -> None:
    print(f"[agi-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kib(pid: int) -> int:
    """Resident memory of the server: the process and its workers, if any."""
    total = 0
    for each in (pid, *children(pid)):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _own_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """Live descendants of `pid`: `hotline agi --workers N`'s workers, the call-log writer
    process of each FastAGI process (agi_scripts/writer_process.py)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def cpu_seconds(pid: int) -> float:
    """CPU time of the server: the process and its workers, if any."""
    total = _own_cpu_seconds(pid)
    for child in children(pid):
        with contextlib.suppress(OSError):
            total += _own_cpu_seconds(child)
    return total


def wait_listening(
    port: int, proc: subprocess.Popen[bytes], timeout: float = 120, ready: Path | None = None
) -> None:
    """Until the port accepts (and `ready` exists: workers bind late, their parent at once)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} during start-up")
        if ready is None or ready.exists():
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


@contextlib.contextmanager
def server(
    argv: list[str],
    env: dict[str, str],
    port: int,
    cpu: int | str,
    logfile: Path,
    ready: Path | None = None,
) -> Iterator[int]:
    out = logfile.open("wb")
    # Started in the run's temp dir, not the caller's: `python -c` puts the working directory
    # first on sys.path, so from a checkout a --baseline-tree server would import this
    # checkout's code instead of its own (PYTHONPATH says which tree a server runs).
    proc = subprocess.Popen(
        ["taskset", "-c", str(cpu), *argv],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
        cwd=logfile.parent,
    )
    try:
        wait_listening(port, proc, ready=ready)
        yield proc.pid
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        out.close()


def hotline_env(tmp: Path, db_url: str, port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {
        **os.environ,
        "HOTLINE_DATABASE_URL": db_url,
        "HOTLINE_AGI_HOST": "127.0.0.1",
        "HOTLINE_AGI_PORT": str(port),
        "HOTLINE_AUDIOSOCKET_PORT": str(free_port()),
        "HOTLINE_STATE_DIR": str(tmp / "state"),
        "HOTLINE_RECORDINGS_DIR": str(tmp / "recordings"),
        "HOTLINE_CONFIG_FILE": "",  # no settings file
        "HOTLINE_DEFAULT_LANGUAGE": "ru",
        "PYTHONPATH": str(ROOT),  # this tree's server; --baseline-tree's extra overrides it
        **extra,
    }
    return env


def summarise(stats: Stats, seconds: float) -> dict[str, Any]:
    return {
        "sessions": stats.started,
        "completed": stats.completed,
        "hangups": stats.hangups,
        "errors": stats.errors,
        "error_kinds": stats.error_kinds,
        "seconds": round(seconds, 2),
        "sessions_per_s": round(stats.completed / seconds, 1) if seconds else None,
        "think_p50_ms": percentile(stats.think_ms, 50),
        "think_p99_ms": percentile(stats.think_ms, 99),
        "think_max_ms": percentile(stats.think_ms, 100),
        "between_commands_p50_ms": percentile(stats.between_ms, 50),
        "between_commands_p99_ms": percentile(stats.between_ms, 99),
        "first_reply_p99_ms": percentile(stats.first_reply_ms, 99),
        "queues": stats.queues,
        "to_failsafe": stats.failsafe,
        "peak_in_progress": stats.peak_in_progress,
    }


async def sample_rss(pid: int, stop: asyncio.Event, peak: list[int]) -> None:
    while not stop.is_set():
        with contextlib.suppress(OSError):
            peak[0] = max(peak[0], rss_kib(pid))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.2)


async def probe_snapshot(pid: int, probe: Path | None, n: int) -> dict[str, Any] | None:
    """The loop probe's report for what ran since its last snapshot (bench/agi/loop_probe.py)."""
    if probe is None:
        return None
    os.kill(pid, signal.SIGUSR1)
    path = probe.with_suffix(f".{n}.json")
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return json.loads(path.read_text()) if path.exists() else None


async def measured_loop(
    pid: int, port: int, caller: Caller, concurrency: int, seconds: float, period: float = 0.0
) -> dict[str, Any]:
    """`concurrency` callers in a closed loop for `seconds` (each starting at most one session
    per `period`), with the server's CPU meanwhile."""
    cpu0 = cpu_seconds(pid)
    stats, elapsed = await closed_loop(port, caller, concurrency, seconds, period=period)
    cpu = cpu_seconds(pid) - cpu0
    summary = summarise(stats, elapsed)
    summary["server_cpu_pct"] = round(100 * cpu / elapsed, 1)
    # CPU per session: what a whole free core would serve, whatever else ran on this one.
    summary["server_cpu_ms_per_session"] = round(1000 * cpu / max(stats.completed, 1), 3)
    summary["sessions_per_core_s"] = round(stats.completed / cpu, 1) if cpu else None
    summary["commands_per_session"] = round(len(stats.think_ms) / max(stats.started, 1), 1)
    summary["prompts_per_session"] = round(stats.prompts / max(stats.started, 1), 2)
    if stats.session_ms:
        # Little's law: the callers in the menu on average (the peak is in `peak_in_progress`).
        mean_session_s = sum(stats.session_ms) / len(stats.session_ms) / 1000
        summary["mean_in_progress"] = round(summary["sessions_per_s"] * mean_session_s, 1)
    return summary


async def run_phases(
    pid: int, port: int, args: argparse.Namespace, script: str, probe: Path | None = None
) -> dict[str, Any]:
    result: dict[str, Any] = {}
    rate_caller = Caller(
        keys=tuple(args.keys.split(",")), hangup_share=args.hangup_share, script=script
    )
    # Warm-up: imports, first SQL statements, caches.
    await closed_loop(port, rate_caller, min(args.concurrency, 10), 2.0)
    await probe_snapshot(pid, probe, 0)
    result["rate"] = await measured_loop(pid, port, rate_caller, args.concurrency, args.seconds)
    if (stalls := await probe_snapshot(pid, probe, 1)) is not None:
        result["rate"]["loop_probe"] = stalls
        log(
            f"  loop probe: cpu stalls {stalls['cpu_stall_histogram']} "
            f"{stalls['cpu_stall_totals_s']}; wall stalls {stalls['wall_stall_histogram']} "
            f"{stalls['wall_stall_totals_s']}; gc {stalls['gc']}"
        )
    log(f"  rate: {json.dumps(result['rate'])}")
    if args.light:
        # Fewer callers than the server's capacity: the replies' own latency, not queueing.
        result["light"] = await measured_loop(pid, port, rate_caller, args.light, args.seconds)
        result["light"]["concurrency"] = args.light
        log(f"  light: {json.dumps(result['light'])}")
    if args.paced:
        # The same callers, each starting a session every --concurrency/--paced s and thinking
        # at its keypad prompts for ~80 % of that: --paced sessions/s offered with about
        # --concurrency callers in the menu at once. The replies' latency at a given rate (at
        # saturation the rate phase's think time is queueing: Little's law, BENCHMARKS.md).
        period = args.concurrency / args.paced
        think = 0.8 * period / (result["rate"]["prompts_per_session"] or 1.0)
        paced_caller = Caller(
            keys=tuple(args.keys.split(",")), think=(think * 0.75, think * 1.25),
            hangup_share=args.hangup_share, script=script,
        )  # fmt: skip
        result["paced"] = await measured_loop(
            pid, port, paced_caller, args.concurrency, args.seconds, period
        )
        result["paced"]["offered_sessions_per_s"] = args.paced
        result["paced"]["keypad_think_ms"] = round(think * 1000, 1)
        log(f"  paced: {json.dumps(result['paced'])}")
    if args.held:
        await asyncio.sleep(1.0)  # let the writer settle
        base = rss_kib(pid)
        peak = [base]
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_rss(pid, stop, peak))
        think = (args.think * 0.75, args.think * 1.25)
        held_caller = Caller(
            keys=tuple(args.keys.split(",")), think=think, hangup_share=args.hangup_share,
            script=script, command_timeout=args.think * 10,
        )  # fmt: skip
        try:
            stats, seconds = await asyncio.wait_for(
                held(port, held_caller, args.held, held_ramp(args)), args.held_timeout
            )
        except TimeoutError:
            stats, seconds = Stats(errors=-1), args.held_timeout
        stop.set()
        await sampler
        result["held"] = summarise(stats, seconds)
        result["held"]["rss_base_mib"] = round(base / 1024, 1)
        result["held"]["rss_peak_mib"] = round(peak[0] / 1024, 1)
        if stats.peak_in_progress:
            result["held"]["kib_per_held_session"] = round(
                (peak[0] - base) / stats.peak_in_progress, 1
            )
        log(f"  held: {json.dumps(result['held'])}")
    return result


def held_ramp(args: argparse.Namespace) -> float:
    """Arrivals per second of the held phase: by default all within the shortest think time
    (0.75 * --think), so the first caller is still at the keypad when the last arrives."""
    return args.ramp or args.held / (0.75 * args.think)


async def overload(port: int, args: argparse.Namespace) -> dict[str, Any]:
    """`--cap` callers hold the server; `--over` more arrive and must be routed at once."""
    holding = Caller(keys=("1",), think=(20.0, 20.0), command_timeout=60)
    stats_hold = Stats()
    import random

    from loadgen import session

    rng = random.Random(3)
    holders = [
        asyncio.create_task(session(port, holding, stats_hold, rng)) for _ in range(args.cap)
    ]
    deadline = time.monotonic() + 30
    # Full: every holder in the menu, at its keypad prompt. Before 2026-12-06 the over-cap
    # callers came as soon as the holders had their first reply, while the holders' own
    # greetings were still being served: the first of them queued behind ~800 commands
    # (BENCHMARKS.md, "The overload answer").
    while stats_hold.in_progress < args.cap or stats_hold.prompts < args.cap:
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    over = Stats()
    # One at a time (each measured alone), as callers arrive at a box that is full.
    for _ in range(args.over):
        await session(port, Caller(keys=("1",)), over, rng)
    for task in holders:
        task.cancel()
    await asyncio.gather(*holders, return_exceptions=True)
    return {
        "cap": args.cap,
        "over": args.over,
        "routed": over.queues,
        "to_failsafe": over.failsafe,
        "errors": over.errors,
        "holders_at_their_prompt": stats_hold.prompts,
        "answered_p50_ms": percentile(over.session_ms, 50),
        "answered_p95_ms": percentile(over.session_ms, 95),
        "answered_max_ms": percentile(over.session_ms, 100),
    }


def create_pg_database(name: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


HOTLINE_ARGV = [sys.executable, "-c", "from agi_scripts.server import main; main()"]


async def run_hotline(
    tmp: Path, db_url: str, args: argparse.Namespace, name: str, extra: dict[str, str]
) -> dict[str, Any]:
    """The Hotline server (one process, pinned to --cpu) through every phase."""
    port = free_port()
    env = hotline_env(tmp, db_url, port, extra)
    argv = HOTLINE_ARGV
    probe = tmp / f"loop-probe-{name}.json"
    if args.probe:
        # The same server, with the loop-stall probe (bench/agi/loop_probe.py).
        argv = [sys.executable, str(HERE / "loop_probe.py")]
        env["HOTLINE_LOOP_PROBE"] = str(probe)
    log(f"{name} server on core {args.cpu}, db {args.db}")
    with server(argv, env, port, args.cpu, tmp / f"{name}.log") as pid:
        return await run_phases(pid, port, args, "hotline", probe if args.probe else None)


def report_header(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {_cpu_model()}",
        "python": platform.python_version(),
        # Files by their names only: no path of this machine in a saved report.
        "args": {
            **vars(args),
            "baseline_tree": args.baseline_tree.name if args.baseline_tree else None,
            "save": args.save.name if args.save else None,
        },
    }


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from call_router.db import Database

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cpus = sorted(os.sched_getaffinity(0))
    load_cpus = {c for c in cpus if c != args.cpu} or set(cpus)
    os.sched_setaffinity(0, load_cpus)
    report = report_header(args)
    servers = args.servers.split(",")
    tmp = Path(tempfile.mkdtemp(prefix="agi-bench-"))
    pg_name = f"hotline_bench_agi_{os.getpid()}"
    db_url = bench_database(args.db, tmp, pg_name)
    try:
        if args.db != "away":
            Database(db_url).upgrade()
        if "hotline" in servers:
            report["hotline"] = await run_hotline(tmp, db_url, args, "hotline", {})
        # The same server with its call-log writer in a thread / in a child process, whatever
        # the default, in the same run: the A/B (HOTLINE_AGI_WRITER_PROCESS).
        for name, process in (("hotline-thread", "false"), ("hotline-process", "true")):
            if name in servers:
                extra = {
                    "HOTLINE_AGI_WRITER_PROCESS": process,
                    "HOTLINE_STATE_DIR": str(tmp / name),
                }
                report[name.replace("-", "_")] = await run_hotline(tmp, db_url, args, name, extra)
        if args.baseline_tree is not None:
            # The previous code (`git archive <commit> | tar -x -C DIR`) in the same run, same
            # generator, same core: the before/after of a change, measured side by side.
            extra = {
                "PYTHONPATH": str(args.baseline_tree.resolve()),
                "HOTLINE_BENCH_TREE": str(args.baseline_tree.resolve()),
                "HOTLINE_STATE_DIR": str(tmp / "baseline"),
            }
            report["hotline_baseline"] = await run_hotline(tmp, db_url, args, "baseline", extra)
        if "hotline" in servers and args.workers > 1:
            port = free_port()
            # Its own state dir: the workers' spools and ready file are not the first server's.
            env = hotline_env(tmp, db_url, port, {"HOTLINE_STATE_DIR": str(tmp / "state-w")})
            argv = [sys.executable, "-m", "hotline", "agi", "--workers", str(args.workers)]
            # Default: every core this bench may use (the load generator shares them).
            cores = args.workers_cpus or ",".join(str(c) for c in cpus)
            log(f"hotline with {args.workers} workers on cores {cores}, db {args.db}")
            ready = tmp / "state-w" / "run" / "agi.ready"
            with server(argv, env, port, cores, tmp / "hotline-workers.log", ready) as pid:
                report["hotline_workers"] = await run_phases(pid, port, args, "hotline")
                report["hotline_workers"]["workers"] = args.workers
                report["hotline_workers"]["cores"] = cores
        for name in ("reference", "reference-uvloop"):
            if name not in servers:
                continue
            port = free_port()
            log(f"{name} server on core {args.cpu}")
            argv = [sys.executable, str(HERE / "reference_server.py"), str(port)]
            if name == "reference-uvloop":
                argv.append("--uvloop")
            env = dict(os.environ)
            probe = tmp / f"loop-probe-{name}.json"
            if args.probe:
                argv = [sys.executable, str(HERE / "loop_probe.py"), *argv[1:]]
                env["HOTLINE_LOOP_PROBE"] = str(probe)
            with server(argv, env, port, args.cpu, tmp / f"{name}.log") as pid:
                report[name.replace("-", "_")] = await run_phases(
                    pid, port, args, "hotline", probe if args.probe else None
                )
        if "hotline" in servers and args.cap:
            port = free_port()
            env = hotline_env(tmp, db_url, port, {"HOTLINE_AGI_MAX_SESSIONS": str(args.cap)})
            log(f"hotline server capped at {args.cap} sessions")
            with server(HOTLINE_ARGV, env, port, args.cpu, tmp / "hotline-capped.log"):
                report["overload"] = await overload(port, args)
                log(f"  overload: {json.dumps(report['overload'])}")
        if "hotline" in report and "reference" in report:
            h, r = report["hotline"]["rate"], report["reference"]["rate"]
            report["ratio_sessions_per_s"] = round(h["sessions_per_s"] / r["sessions_per_s"], 3)
        for name in ("hotline_thread", "hotline_process", "hotline_baseline"):
            if name in report and "reference" in report:
                h, r = report[name]["rate"], report["reference"]["rate"]
                report[f"ratio_sessions_per_s_{name}"] = round(
                    h["sessions_per_s"] / r["sessions_per_s"], 3
                )
        if "hotline" in report and "reference_uvloop" in report:
            h, r = report["hotline"]["rate"], report["reference_uvloop"]["rate"]
            report["ratio_sessions_per_s_uvloop_reference"] = round(
                h["sessions_per_s"] / r["sessions_per_s"], 3
            )
        if "hotline" in report and "hotline_workers" in report:
            h, w = report["hotline"]["rate"], report["hotline_workers"]["rate"]
            report["ratio_workers_sessions_per_s"] = round(
                w["sessions_per_s"] / h["sessions_per_s"], 3
            )
        if "hotline" in servers and args.db != "away":
            report["call_log_rows"] = count_rows(db_url)
    finally:
        if args.db == "postgres":
            drop_pg_database(pg_name)
        if not args.keep:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    return report


# `--db away`: PostgreSQL on a port nobody listens on (connections refused at once), the
# database down for the whole run: what the menu costs when every lookup would fail.
AWAY_URL = "postgresql+psycopg://postgres@127.0.0.1:1/hotline_away"


def bench_database(kind: str, tmp: Path, pg_name: str) -> str:
    """The call log's URL for `--db` (a fresh PostgreSQL database is created for postgres)."""
    if kind == "postgres":
        return create_pg_database(pg_name)
    if kind == "away":
        return AWAY_URL
    return f"sqlite:///{tmp / 'hotline.db'}"


def count_rows(db_url: str) -> dict[str, int]:
    from sqlalchemy import create_engine, text

    engine = create_engine(db_url)
    with engine.connect() as conn:
        calls = conn.execute(text("SELECT count(*) FROM calls")).scalar_one()
        events = conn.execute(text("SELECT count(*) FROM call_events")).scalar_one()
    engine.dispose()
    return {"calls": int(calls), "call_events": int(events)}


def common_arguments(
    doc: str | None, *, seconds: float, seconds_help: str
) -> argparse.ArgumentParser:
    """The options run.py and ab.py share."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", default="hotline,reference")
    parser.add_argument("--db", choices=["sqlite", "postgres", "away"], default="sqlite")
    parser.add_argument("--cpu", type=int, default=0, help="the core the servers are pinned to")
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=seconds, help=seconds_help)
    parser.add_argument("--keys", default="1,1", help="GET DATA answers in turn (the last repeats)")
    parser.add_argument("--hangup-share", type=float, default=0.1)
    parser.add_argument(
        "--baseline-tree",
        type=Path,
        help="also run the Hotline server from this source tree (the code before a change)",
    )
    parser.add_argument("--save", type=Path)
    return parser


def main() -> None:
    parser = common_arguments(__doc__, seconds=15.0, seconds_help="per phase")
    parser.add_argument(
        "--light", type=int, default=10,
        help="callers in a second rate phase, below saturation (0: skip)",
    )  # fmt: skip
    parser.add_argument(
        "--paced", type=float, default=700.0,
        help="sessions/s the --concurrency callers offer in a third phase, thinking at the "
        "keypad (0: skip); the default is issue 12's target rate",
    )  # fmt: skip
    parser.add_argument("--held", type=int, default=3000)
    parser.add_argument("--think", type=float, default=2.0)
    parser.add_argument(
        "--ramp", type=float,
        help="held callers arriving per second (default: all within the shortest think time, "
        "so that every one of them is in the menu at once)",
    )  # fmt: skip
    parser.add_argument("--held-timeout", type=float, default=120.0)
    parser.add_argument("--cap", type=int, default=200, help="0: skip the overload phase")
    parser.add_argument("--over", type=int, default=50)
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="also run `hotline agi --workers N` (unpinned from --cpu: on --workers-cpus)",
    )
    parser.add_argument(
        "--workers-cpus", default="", help="taskset list for the workers (default: all cores)"
    )
    parser.add_argument(
        "--loadgen-loop",
        choices=["uvloop", "asyncio"],
        default="uvloop",
        help="the load generator's event loop (uvloop: it costs less per command, so the "
        "reference's numbers are less the generator's)",
    )
    parser.add_argument(
        "--probe",
        action="store_true",
        help="run the Hotline server under bench/agi/loop_probe.py: its loop stalls, attributed",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (server logs)")
    args = parser.parse_args()
    factory = None
    if args.loadgen_loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        report = runner.run(main_async(args))
    emit(report, args.save)


def emit(report: dict[str, Any], save: Path | None) -> None:
    """The report as JSON on stdout, and in `save` if given."""
    text = json.dumps(report, indent=2, default=str)
    if save:
        save.parent.mkdir(parents=True, exist_ok=True)
        save.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
