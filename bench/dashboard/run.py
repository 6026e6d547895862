"""Dashboard latency with a million calls in PostgreSQL: see bench/dashboard/README.md.

.venv/bin/python bench/dashboard/run.py [--calls 1000000] [--requests 200] [--concurrency 1,8]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import psycopg
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import datagen  # noqa: E402

from call_router import accounts, board_reads, call_search, call_sums  # noqa: E402
from call_router.db import Database  # noqa: E402
from hotline import services  # noqa: E402

ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
DB_NAME = "hotline_bench_dashboard"
# The hotline's zone for the run: chosen so that it is ~18:00 there now (busy_zone), so "today"
# on the wallboard and in the day report holds a whole working day of calls whatever the hour
# the bench runs at. The generated log follows a Moscow working-day profile.
ZONE = ZoneInfo("Europe/Moscow")
SEED = 20261123
REDIS_PREFIX = f"bench-dashboard-{os.getpid()}"


def busy_zone(now: datetime, local_hour: int = 18) -> ZoneInfo:
    """A fixed-offset zone where it is about `local_hour` o'clock at `now`."""
    offset = (local_hour - now.astimezone(UTC).hour + 12) % 24 - 12  # -12..+11
    # POSIX-style names: Etc/GMT+4 is UTC-4.
    return ZoneInfo("Etc/GMT" if offset == 0 else f"Etc/GMT{-offset:+d}")


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", flush=True)


def ensure_database(admin_url: str, name: str) -> str:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not exists:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


def libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def prepare(url: str, calls: int, days: int, regenerate: bool) -> dict[str, Any]:
    """Migrate, then (re)generate the log unless the cached one has this shape; keep it "today"."""
    Database(url).upgrade()
    with psycopg.connect(libpq(url)) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_meta (key text PRIMARY KEY, value text NOT NULL)"
        )
        meta: dict[str, Any] = dict(conn.execute("SELECT key, value FROM bench_meta").fetchall())
        conn.commit()
        wanted = {"calls": str(calls), "days": str(days), "seed": str(SEED)}
        now = datagen.utc_now_naive()
        if regenerate or any(meta.get(k) != v for k, v in wanted.items()):
            log(f"generating {calls:,} calls over {days} days (COPY) ...")
            started = time.monotonic()
            shape = datagen.Shape(calls=calls, days=days, seed=SEED, end=now)
            datagen.load(conn, shape, progress=log)
            conn.execute("DELETE FROM bench_meta")
            for key, value in {**wanted, "end": now.isoformat()}.items():
                conn.execute("INSERT INTO bench_meta VALUES (%s, %s)", (key, value))
            conn.commit()
            log(f"loaded in {time.monotonic() - started:.0f} s; VACUUM ANALYZE ...")
            meta = {**wanted, "end": now.isoformat(), "generated_s": time.monotonic() - started}
        else:
            end = datetime.fromisoformat(str(meta["end"]))
            lag = now - end
            # A few hours of gap only thin out the end of "today"; a day would empty it.
            if lag > timedelta(hours=6):
                log(f"cached log ends {lag} ago: shifting it forward ...")
                datagen.shift(conn, lag)
                conn.execute(
                    "UPDATE bench_meta SET value = %s WHERE key = 'end'", (now.isoformat(),)
                )
                conn.commit()
                meta["end"] = now.isoformat()
            log("cached log reused")
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE calls")
        conn.execute("VACUUM ANALYZE call_events")
        conn.execute("VACUUM ANALYZE agent_state_log")
        sizes = conn.execute(
            "SELECT relname, pg_total_relation_size(oid) FROM pg_class"
            " WHERE relname IN ('calls', 'call_events') ORDER BY relname"
        ).fetchall()
    return {**meta, "sizes_mb": {name: round(size / 2**20) for name, size in sizes}}


def bench_token(url: str) -> str:
    """A supervisor API token, made by the same function as `hotline tokens create`."""
    db = Database(url)
    with db.session() as session:
        token, _ = accounts.create_token(
            session, accounts.SUPERVISOR, name="bench-dashboard", now=datetime.now(UTC)
        )
    db.dispose()
    return token


def samples(url: str) -> dict[str, Any]:
    """Real values to search for: numbers, call ids, queues (random, seeded)."""
    with psycopg.connect(libpq(url)) as conn:
        numbers = [
            r[0]
            for r in conn.execute(
                "SELECT caller_number FROM calls TABLESAMPLE SYSTEM (1) "
                "WHERE caller_number <> 'anonymous' LIMIT 500"
            )
        ]
        top = conn.execute("SELECT max(id) FROM calls").fetchone()
        midnight = datetime.combine(datetime.now(ZONE).date(), datetime.min.time(), tzinfo=ZONE)
        today = conn.execute(
            "SELECT count(*) FROM calls WHERE started_at >= %s",
            (midnight.astimezone(UTC).replace(tzinfo=None),),
        ).fetchone()
    return {
        "numbers": numbers,
        "max_id": int(top[0]) if top and top[0] else 1,
        "calls_today": int(today[0]) if today else 0,
    }


def scenarios(facts: dict[str, Any], rng: random.Random) -> dict[str, Callable[[], str]]:
    today = datetime.now(ZONE).date()
    queues = sorted(set(datagen.INTENT_QUEUE.values()))

    def day_range() -> tuple[datetime, datetime]:
        first = today - timedelta(days=rng.randrange(0, 85))
        since = datetime.combine(first, datetime.min.time(), tzinfo=ZONE)
        return since, since + timedelta(days=rng.randrange(1, 8))

    def range_queue() -> str:
        since, until = day_range()
        q = httpx.QueryParams(
            since=since.isoformat(), until=until.isoformat(), queue=rng.choice(queues), limit=50
        )
        return f"/api/calls?{q}"

    def calls_page_filtered() -> str:
        first = today - timedelta(days=rng.randrange(0, 85))
        q = httpx.QueryParams(
            date_from=first.isoformat(),
            date_to=(first + timedelta(days=6)).isoformat(),
            queue=rng.choice(queues),
        )
        return f"/calls?{q}"

    def number() -> str:
        return str(rng.choice(facts["numbers"]))

    def call_id() -> int:
        return rng.randrange(1, facts["max_id"] + 1)

    def report(days: int) -> str:
        first = today - timedelta(days=days - 1)
        by = "hour" if days == 1 else "day"
        return f"/reports?date_from={first.isoformat()}&date_to={today.isoformat()}&by={by}"

    return {
        # The floor: routing, auth middleware and HTTP, no database.
        "healthz": lambda: "/healthz",
        "api_calls_first_page": lambda: "/api/calls?limit=50",
        "api_calls_first_page_with_total": lambda: "/api/calls?limit=50&with_total=true",
        "api_calls_by_number": lambda: f"/api/calls?{httpx.QueryParams(caller=number())}",
        "api_calls_range_queue": range_queue,
        "api_call_detail": lambda: f"/api/calls/{call_id()}",
        "calls_page": lambda: "/calls",
        "calls_page_by_number": lambda: f"/calls?{httpx.QueryParams(caller=number())}",
        "calls_page_week_queue": calls_page_filtered,
        "call_detail_page": lambda: f"/calls/{call_id()}",
        "wallboard_snapshot": lambda: "/api/wallboard",
        "reports_day": lambda: report(1),
        "reports_30_days": lambda: report(30),
    }


def group_cpu_seconds(group: int) -> float:
    """CPU time (user + system) of the live processes in a process group: the dashboard's."""
    total = 0
    for pid in services.group_members(group):
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))
    return ordered[index]


async def measure(
    base: str,
    token: str,
    make_url_: Callable[[], str],
    requests: int,
    concurrency: int,
    rate: float | None = None,
) -> dict[str, Any]:
    """`concurrency` clients; back to back (a saturation test: latency = clients / throughput),
    or with `rate` each client starts a request every concurrency/rate seconds (people who
    click now and then; a client that falls behind sends its next one at once)."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(
        base_url=base, headers=headers, limits=limits, timeout=60
    ) as client:
        for _ in range(min(10, requests)):  # warm-up: connections, caches, the plan cache
            await client.get(make_url_())
        queue = [make_url_() for _ in range(requests)]
        started = time.perf_counter()

        async def worker(index: int) -> None:
            interval = concurrency / rate if rate else 0.0
            due = started + index * interval / concurrency  # spread the clients' starts
            while queue:
                if interval:
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                    due += interval
                    if not queue:
                        break
                path = queue.pop()
                t0 = time.perf_counter()
                response = await client.get(path)
                latencies.append((time.perf_counter() - t0) * 1000)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

        await asyncio.gather(*(worker(i) for i in range(concurrency)))
        elapsed = time.perf_counter() - started
    return {
        "requests": requests,
        "concurrency": concurrency,
        "offered_rps": rate,
        "statuses": statuses,
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 0.95), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(max(latencies), 1),
        "rps": round(requests / elapsed, 1),
    }


@contextlib.contextmanager
def live_events(redis_url: str, per_second: float) -> Any:
    """Publish `per_second` events on the dashboard's `<prefix>:events` channel meanwhile, as
    the router does for every change (a busy centre): each one invalidates the wallboard's
    shared picture in every dashboard process (dashboard/live_hub.py)."""
    if per_second <= 0:
        yield
        return
    import redis

    client = redis.Redis.from_url(redis_url)
    stop = threading.Event()

    def publish() -> None:
        due = time.monotonic()
        while not stop.is_set():
            client.publish(f"{REDIS_PREFIX}:events", json.dumps({"type": "bench"}))
            due += 1 / per_second
            stop.wait(max(0.0, due - time.monotonic()))

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        client.close()


def start_server(url: str, port: int, state_dir: Path, workers: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "HOTLINE_DATABASE_URL": url,
        "HOTLINE_STATE_DIR": str(state_dir),
        "HOTLINE_TIMEZONE": ZONE.key,
        "HOTLINE_DASHBOARD_HOST": "127.0.0.1",
        "HOTLINE_DASHBOARD_PORT": str(port),
        "HOTLINE_DASHBOARD_WORKERS": str(workers),
        # Its own Redis keys: the wallboard reads live state there (empty: no router runs).
        "HOTLINE_REDIS_PREFIX": REDIS_PREFIX,
    }
    log_path = state_dir / f"dashboard-{workers}.log"
    with log_path.open("wb") as server_log:
        # Its own process group: uvicorn's workers are stopped with it (stop_server).
        server = subprocess.Popen(
            [sys.executable, "-m", "dashboard.main"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=server_log,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                # Every worker up: uvicorn's parent logs each one's startup.
                started = log_path.read_text().count("Application startup complete")
                if started >= workers:
                    return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    stop_server(server)
    raise SystemExit(f"dashboard did not start: {log_path.read_text()[-2000:]}")


def stop_server(server: subprocess.Popen[bytes]) -> None:
    """SIGTERM (uvicorn's parent stops its workers), then SIGKILL whatever of the group is left."""
    server.terminate()
    try:
        server.wait(15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)


def explain(url: str) -> dict[str, str]:
    """EXPLAIN ANALYZE of the SQL behind the measured pages (captured from the real code)."""
    engine = create_engine(url)
    captured: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        if not statement.lstrip().upper().startswith("EXPLAIN"):
            captured.append((statement, params))

    from sqlalchemy.orm import Session

    now = datetime.now(UTC)
    today = datetime.now(ZONE).date()
    since = datetime.combine(today - timedelta(days=29), datetime.min.time(), tzinfo=ZONE)
    until = datetime.combine(today + timedelta(days=1), datetime.min.time(), tzinfo=ZONE)
    week = datetime.combine(today - timedelta(days=40), datetime.min.time(), tzinfo=ZONE)
    cases: dict[str, Callable[[Session], Any]] = {
        "first_page": lambda s: call_search.list_calls(s, limit=51),
        "by_number": lambda s: call_search.list_calls(
            s, where=call_search.CallFilter(caller="+74953000001"), limit=51
        ),
        "range_queue": lambda s: call_search.list_calls(
            s,
            where=call_search.CallFilter(since=week, until=week + timedelta(days=7), queue="lift"),
            limit=51,
        ),
        "count_all": lambda s: call_search.count_calls(s, call_search.CallFilter()),
        # What /calls counts (dashboard/routes/pages.py COUNT_CAP): at most 10,001.
        "count_capped": lambda s: call_search.count_calls(s, call_search.CallFilter(), cap=10_001),
        "count_capped_week_queue": lambda s: call_search.count_calls(
            s,
            call_search.CallFilter(since=week, until=week + timedelta(days=7), queue="heating"),
            cap=10_001,
        ),
        "distinct_queue": lambda s: call_search.distinct_values(s, "queue"),
        "wallboard_calls": lambda s: day_rows(s, call_search.start_of_day(now, ZONE), now),
        "report_slots_30d": lambda s: call_sums.calls_per_slot(s, since, until),
        "report_queues_30d": lambda s: call_sums.queue_totals(
            s, since, until, threshold=20, now=now
        ),
        "report_operators_30d": lambda s: call_sums.operator_totals(s, since, until, now=now),
    }
    plans: dict[str, str] = {}
    for name, run in cases.items():
        captured.clear()
        with Session(engine) as session:
            run(session)
            lines = []
            for statement, params in list(captured):
                rows = (
                    session.connection()
                    .exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, params)
                    .fetchall()
                )
                lines += [r[0] for r in rows] + [""]
        plans[name] = "\n".join(lines)
    engine.dispose()
    return plans


def day_rows(session: Session, since: datetime, now: datetime) -> list[Any]:
    """The wallboard's old read (before the SQL sums): today's calls plus any still open from
    before midnight, as plain columns, to be added up in Python. Kept for the comparison."""
    from sqlalchemy import and_, or_, select

    from call_router.models import Call

    columns = (
        Call.id,
        Call.caller_number,
        Call.caller_name,
        Call.started_at,
        Call.queue_joined_at,
        Call.answered_at,
        Call.ended_at,
        Call.queue,
        Call.operator,
        Call.outcome,
        Call.wait_seconds,
        Call.talk_seconds,
    )
    stmt = select(*columns).where(
        or_(
            Call.started_at >= since,
            and_(Call.ended_at.is_(None), Call.started_at >= now - board_reads.STALE_CALL),
        )
    )
    return list(session.execute(stmt.order_by(Call.started_at.asc(), Call.id.asc())))


def wallboard_paths(url: str, rounds: int = 30) -> dict[str, Any]:
    """In-process: today's queue figures the way the wallboard reads them now (every row of
    the day, added up in Python) against the GROUP BY path (queue_totals + open_calls)."""
    from call_router import reports
    from call_router import service_figures as sf
    from call_router.settings import QUEUES

    db = Database(url)
    now = datetime.now(UTC)
    since = call_search.start_of_day(now, ZONE)

    def figures(rows: list[Any]) -> Any:
        calls = [
            sf.queue_call(r, now)
            for r in rows
            if r.queue and r.started_at >= since and r.queue_joined_at is not None
        ]
        stats = reports.queue_figures(sf.plain_totals(calls, threshold=20), QUEUES)
        return len(rows), stats

    def rows_path() -> Any:
        with db.session() as session:
            return figures(day_rows(session, since, now))

    def orm_path() -> Any:  # day_rows before it read plain columns
        from sqlalchemy import and_, or_, select

        from call_router.models import Call

        stale = now - board_reads.STALE_CALL
        stmt = select(Call).where(
            or_(Call.started_at >= since, and_(Call.ended_at.is_(None), Call.started_at >= stale))
        )
        with db.session() as session:
            return figures(list(session.scalars(stmt.order_by(Call.started_at, Call.id))))

    def sql_path() -> Any:
        with db.session() as session:
            open_rows = board_reads.open_calls(session, now)
            totals = call_sums.queue_totals(
                session, since, now + timedelta(days=1), threshold=20, now=now
            )
            return len(open_rows), reports.queue_figures(totals, QUEUES)

    result: dict[str, Any] = {}
    paths = (("orm_rows", orm_path), ("column_rows", rows_path), ("group_by_sql", sql_path))
    for name, path in paths:
        path()
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            rows, stats = path()
            times.append((time.perf_counter() - t0) * 1000)
        result[name] = {
            "rows_read": rows,
            "offered": sum(s.offered for s in stats),
            "p50_ms": round(statistics.median(times), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
        }
    db.dispose()
    return result


def report_paths(url: str, days: int = 30, rounds: int = 3) -> dict[str, Any]:
    """In-process: a `days`-day report the old way (every row loaded, added up in Python, as
    before migration 0008's change) against the GROUP BY path the page uses now."""
    from sqlalchemy import select

    from call_router import reports
    from call_router import service_figures as sf
    from call_router.models import Call
    from call_router.settings import QUEUES, Settings
    from dashboard.routes.reports import build_report

    db = Database(url)
    now = datetime.now(UTC)
    last = datetime.now(ZONE).date()
    first = last - timedelta(days=days - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=ZONE)
    until = datetime.combine(last + timedelta(days=1), datetime.min.time(), tzinfo=ZONE)

    def rows_path() -> int:
        with db.session() as session:
            stmt = select(Call).where(Call.started_at >= since, Call.started_at < until)
            rows = list(session.scalars(stmt.order_by(Call.started_at, Call.id)))
            offered = [sf.queue_call(r, now) for r in rows if r.queue and r.queue_joined_at]
            reports.queue_figures(sf.plain_totals(offered, threshold=20), QUEUES)
            reports.per_bucket((r.started_at for r in rows), ZONE, "day", first, last)
            reports.per_key(r.intent for r in rows)
            return len(rows)

    def sql_path() -> int:
        with db.session() as session:
            report = build_report(session, Settings(), ZONE, first, last, "day", now=now)
            return report.total

    result: dict[str, Any] = {"days": days}
    for name, path in (("rows_in_python", rows_path), ("group_by_sql", sql_path)):
        times = []
        for _ in range(rounds):
            t0 = time.perf_counter()
            calls = path()
            times.append((time.perf_counter() - t0) * 1000)
        result[name] = {"calls": calls, "median_ms": round(statistics.median(times))}
    db.dispose()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default=ADMIN_URL, help="PostgreSQL to create the DB in")
    parser.add_argument("--db-name", default=DB_NAME)
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--regenerate", action="store_true", help="ignore the cached log")
    parser.add_argument("--requests", type=int, default=200, help="per scenario and concurrency")
    parser.add_argument("--concurrency", default="1,8", help="comma-separated client counts")
    parser.add_argument("--only", default="", help="comma-separated scenario names")
    parser.add_argument(
        "--workers", default="1", help="comma-separated dashboard worker counts, one run each"
    )
    parser.add_argument(
        "--rate", type=float, help="offered requests/s in all (paced clients; default: none)"
    )
    parser.add_argument(
        "--events",
        type=float,
        default=0.0,
        help="live events published per second while measuring (what a busy router sends)",
    )
    parser.add_argument("--port", type=int, default=int(os.environ.get("BENCH_PORT", "21080")))
    parser.add_argument("--explain", type=Path, help="write EXPLAIN ANALYZE plans here")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--compare-reports", action="store_true", help="also time the old row-by-row report"
    )
    parser.add_argument(
        "--skip-paths", action="store_true", help="skip the in-process wallboard comparison"
    )
    parser.add_argument("--drop", action="store_true", help="drop the bench database and exit")
    args = parser.parse_args()

    if args.drop:
        admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)'))
        return
    global ZONE
    ZONE = busy_zone(datetime.now(UTC))
    url = ensure_database(args.admin_url, args.db_name)
    data = prepare(url, args.calls, args.days, args.regenerate)
    log(f"data: {data}")
    if args.explain:
        args.explain.write_text(
            "\n".join(f"=== {name}\n{plan}" for name, plan in explain(url).items())
        )
        log(f"plans written to {args.explain}")
    token = bench_token(url)
    facts = samples(url)
    wallboard = None if args.skip_paths else wallboard_paths(url)
    log(f"wallboard figures in-process: {wallboard}")
    report_compare = report_paths(url) if args.compare_reports else None
    log(f"30-day report in-process: {report_compare}")
    log(f"zone {ZONE.key}: {facts['calls_today']:,} calls so far today")
    rng = random.Random(SEED)
    wanted = {s for s in args.only.split(",") if s}
    levels = [int(c) for c in args.concurrency.split(",")]
    worker_counts = [int(w) for w in args.workers.split(",")]
    results: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU {cpu_model()}",
        "load_avg_start": os.getloadavg(),
        "data": data,
        "zone": ZONE.key,
        "calls_today": facts["calls_today"],
        "wallboard_paths": wallboard,
        "report_paths": report_compare,
        "transport": "uvicorn (python -m dashboard.main, HOTLINE_DASHBOARD_WORKERS) + httpx",
        "workers": worker_counts,
        "scenarios": {},
    }
    redis_url = os.environ.get("HOTLINE_REDIS_URL", "redis://127.0.0.1:6379/0")
    with tempfile.TemporaryDirectory(prefix="bench-dashboard-") as state:
        for workers in worker_counts:
            server = start_server(url, args.port, Path(state), workers)
            log(f"dashboard up with {workers} worker(s)")
            try:
                base = f"http://127.0.0.1:{args.port}"
                for name, make in scenarios(facts, rng).items():
                    if wanted and name not in wanted:
                        continue
                    for level in levels:
                        cpu_before = group_cpu_seconds(server.pid)
                        client_before = time.process_time()
                        with live_events(redis_url, args.events):
                            result = asyncio.run(
                                measure(base, token, make, args.requests, level, args.rate)
                            )
                        client_cpu = time.process_time() - client_before
                        # The app's own cost, whatever else loads the machine (PostgreSQL and
                        # the clients not included); warm-up requests count too.
                        done = args.requests + min(10, args.requests)
                        cpu = group_cpu_seconds(server.pid) - cpu_before
                        result["server_cpu_ms_per_request"] = round(cpu * 1000 / done, 2)
                        # The load generator shares the cores: its cost per request too.
                        result["client_cpu_ms_per_request"] = round(client_cpu * 1000 / done, 2)
                        result["workers"] = workers
                        result["events_per_second"] = args.events
                        result["load_avg"] = [round(x, 2) for x in os.getloadavg()]
                        results["scenarios"].setdefault(name, []).append(result)
                        log(
                            f"{name:32} w={workers} c={level:<2} r={args.rate or '-'} "
                            f"ev={args.events or '-'} "
                            f"p50 {result['p50_ms']:7.1f}  "
                            f"p95 {result['p95_ms']:7.1f}  p99 {result['p99_ms']:7.1f} ms  "
                            f"{result['rps']:6.1f} req/s  "
                            f"cpu {result['server_cpu_ms_per_request']:5.1f} ms/req "
                            f"(client {result['client_cpu_ms_per_request']:4.1f})  "
                            f"{result['statuses']}  load {result['load_avg'][0]}"
                        )
            finally:
                stop_server(server)
    results["load_avg_end"] = os.getloadavg()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
        log(f"results written to {args.json}")


if __name__ == "__main__":
    main()
