"""FastAGI servers compared in interleaved rounds: the same moments of the machine for each.

run.py measures one server after another, so a machine whose speed drifts (a shared host: the
reference alone moved between 3550 and 4900 sessions/s across runs of one morning) can make or
hide a 10 % difference. Here every server is started at once, each pinned to `--cpu` (only the
one under load uses it), and the rate phase (`--concurrency` callers, no think time) runs
`--seconds` per server per round, `--rounds` times, in an order rotated every round:

    .venv/bin/python bench/agi/ab.py --servers hotline,reference --rounds 8
    .venv/bin/python bench/agi/ab.py --servers hotline,reference --baseline-tree DIR  # before/after

Reports per server the median (and range) of sessions/s, server CPU per session and think
p99, and the ratios of each round's pair measured back to back: to the reference's sessions/s,
and (with --baseline-tree) the change's CPU per session to the baseline's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from loadgen import Caller, closed_loop  # noqa: E402


def _spread(values: list[float | None]) -> dict[str, float] | None:
    """Median and range; None values (a round that served no session) left out."""
    known = [v for v in values if v is not None]
    if not known:
        return None
    return {
        "median": round(statistics.median(known), 3),
        "min": round(min(known), 3),
        "max": round(max(known), 3),
    }


def _argv_env(name: str, tmp: Path, db_url: str, port: int, args: argparse.Namespace) -> Any:
    if name.startswith("reference"):
        argv = [sys.executable, str(HERE / "reference_server.py"), str(port)]
        return (argv + ["--uvloop"] if name == "reference-uvloop" else argv), dict(os.environ)
    extra = {"HOTLINE_STATE_DIR": str(tmp / f"state-{name}")}
    if name == "hotline-thin":
        # The server's machinery alone (thin_server.py): no flow, no call log.
        argv = [sys.executable, str(HERE / "thin_server.py"), str(port)]
        return argv, run.hotline_env(tmp, db_url, port, extra)
    if name == "hotline-no-writes":
        # The whole server, its call-log writes dropped (no_writes_server.py).
        argv = [sys.executable, str(HERE / "no_writes_server.py")]
        return argv, run.hotline_env(tmp, db_url, port, extra)
    if name == "hotline-thread":
        extra["HOTLINE_AGI_WRITER_PROCESS"] = "false"
    elif name == "hotline-process":
        extra["HOTLINE_AGI_WRITER_PROCESS"] = "true"
    elif name == "baseline":
        tree = str(args.baseline_tree.resolve())
        extra.update({"PYTHONPATH": tree, "HOTLINE_BENCH_TREE": tree})
    return run.HOTLINE_ARGV, run.hotline_env(tmp, db_url, port, extra)


async def rounds(args: argparse.Namespace, tmp: Path, db_url: str) -> dict[str, Any]:
    names = args.servers.split(",") + (["baseline"] if args.baseline_tree else [])
    caller = Caller(keys=tuple(args.keys.split(",")), hangup_share=args.hangup_share)
    results: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[int, int]] = {}
        for name in names:
            port = run.free_port()
            argv, env = _argv_env(name, tmp, db_url, port, args)
            pid = stack.enter_context(run.server(argv, env, port, args.cpu, tmp / f"{name}.log"))
            servers[name] = (pid, port)
            # Warm-up: imports, first SQL statements, caches.
            await closed_loop(port, caller, min(args.concurrency, 10), 2.0)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                pid, port = servers[name]
                summary = await run.measured_loop(pid, port, caller, args.concurrency, args.seconds)
                results[name].append(summary)
                run.log(
                    f"round {r + 1} {name}: {summary['sessions_per_s']}/s, "
                    f"{summary['server_cpu_ms_per_session']} ms CPU, "
                    f"p99 {summary['think_p99_ms']} ms, errors {summary['errors']}"
                )
    report: dict[str, Any] = {}
    for name, rows in results.items():
        report[name.replace("-", "_")] = {
            "sessions_per_s": _spread([s["sessions_per_s"] for s in rows]),
            "server_cpu_ms_per_session": _spread([s["server_cpu_ms_per_session"] for s in rows]),
            "think_p99_ms": _spread([s["think_p99_ms"] for s in rows]),
            "errors": sum(s["errors"] for s in rows),
            "rounds": rows,
        }
    if "reference" in results:
        ref = results["reference"]
        for name in names:
            if not name.startswith("reference"):
                report[f"ratio_{name.replace('-', '_')}_to_reference"] = _spread(
                    [
                        s["sessions_per_s"] / r["sessions_per_s"]
                        for s, r in zip(results[name], ref, strict=True)
                    ]
                )
    if "baseline" in results and "hotline" in results:
        report["cpu_per_session_hotline_to_baseline"] = _spread(
            [
                s["server_cpu_ms_per_session"] / b["server_cpu_ms_per_session"]
                for s, b in zip(results["hotline"], results["baseline"], strict=True)
            ]
        )
    return report


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    from call_router.db import Database

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {c for c in cpus if c != args.cpu} or set(cpus))
    tmp = Path(tempfile.mkdtemp(prefix="agi-ab-"))
    pg_name = f"hotline_bench_ab_{os.getpid()}"
    db_url = run.bench_database(args.db, tmp, pg_name)
    report = run.report_header(args)
    try:
        if args.db != "away":
            Database(db_url).upgrade()
        report.update(await rounds(args, tmp, db_url))
    finally:
        if args.db == "postgres":
            run.drop_pg_database(pg_name)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return report


def main() -> None:
    parser = run.common_arguments(__doc__, seconds=5.0, seconds_help="per server per round")
    parser.add_argument("--rounds", type=int, default=8)
    args = parser.parse_args()
    import uvloop

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        report = runner.run(main_async(args))
    run.emit(report, args.save)


if __name__ == "__main__":
    main()
