"""Reports over the million-call bench log: the live GROUP BY against the rolled-up quarter hours
(call_router/report_rollups.py). In-process, on the database bench/dashboard/run.py prepared; it
reads the calls and writes only the roll-up tables (emptied first, so the first visit - which
rolls up the last week - is timed, then `hotline reports rollup`'s full roll-up of the range).

.venv/bin/python bench/dashboard/report_rollups.py [--days 30,90] [--rounds 5] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import astuple
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, func, select
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ADMIN_URL, DB_NAME, busy_zone, cpu_model, log  # noqa: E402

from call_router import call_sums, report_rollup_reads, report_rollups, reports  # noqa: E402
from call_router.db import Database  # noqa: E402
from call_router.models import Call  # noqa: E402
from call_router.report_models import ReportSlot  # noqa: E402
from call_router.settings import Settings  # noqa: E402
from dashboard.routes.reports import build_report  # noqa: E402


def timed(work: Callable[[], Any], rounds: int) -> tuple[float, Any]:
    """Median milliseconds of `rounds` runs, and the last result."""
    times, result = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        result = work()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1), result


def _comparable(figures: report_rollup_reads.Figures) -> Any:
    """Ints exact, sums of seconds to the millisecond (a float sum's order differs)."""

    def rounded(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(round(v, 3) if isinstance(v, float) else v for v in values)

    return (
        figures.slots,
        figures.intents,
        [rounded(astuple(t)) for t in figures.queues],
        {name: rounded(astuple(t)) for name, t in figures.operators.items()},
    )


def measure(
    db: Database, settings: Settings, zone: ZoneInfo, now: datetime, days: int, rounds: int
) -> dict[str, Any]:
    threshold = settings.service_level_seconds
    last = now.astimezone(zone).date()
    first = last - timedelta(days=days - 1)
    since = datetime.combine(first, clock.min, tzinfo=zone)
    until = datetime.combine(last + timedelta(days=1), clock.min, tzinfo=zone)

    def live_path() -> int:
        # What build_report ran before the roll-ups: the four live GROUP BYs and the pauses.
        with db.session() as session:
            figures = report_rollup_reads.read_live(
                session, since, until, threshold=threshold, now=now
            )
            call_sums.operator_totals(session, since, until, now=now, calls=figures.operators)
            return sum(figures.slots.values())

    def page_path() -> int:
        with db.session() as session:
            return build_report(session, settings, zone, first, last, "day", now=now).total

    def first_visit() -> int:
        with db.session() as session:
            session.execute(delete(ReportSlot))
        return page_path()

    def roll_up_all() -> int:  # what `hotline reports rollup` does
        first_slot, end = reports.slot_of(since), reports.slot_of(until)
        return report_rollups.roll_up(db.engine, first_slot, end, threshold=threshold, now=now)

    live_ms, live_total = timed(live_path, rounds)
    first_ms, _ = timed(first_visit, 1)
    roll_up_ms, _ = timed(roll_up_all, 1)
    after_ms, after_total = timed(page_path, rounds)
    with db.session() as session:
        rolled = len(report_rollups.covered_slots(session, 0, 2**40, threshold))
        both = [
            report_rollup_reads.report_figures(
                session, since, until, threshold=threshold, now=now, roll_up_missing=use
            )
            if use
            else report_rollup_reads.read_live(session, since, until, threshold=threshold, now=now)
            for use in (True, False)
        ]
    return {
        "days": days,
        "calls": live_total,
        "live_ms": live_ms,
        "first_visit_ms": first_ms,
        "roll_up_rest_ms": roll_up_ms,
        "rolled_up_ms": after_ms,
        "rolled_slots": rolled,
        "same_total": live_total == after_total,
        "same_figures": _comparable(both[0]) == _comparable(both[1]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--db-name", default=DB_NAME)
    parser.add_argument("--days", default="30,90")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    url = make_url(args.admin_url).set(database=args.db_name).render_as_string(False)
    db = Database(url)
    db.upgrade()
    settings = Settings()
    now = datetime.now(UTC)
    zone = busy_zone(now)
    with db.session() as session:
        calls = session.scalar(select(func.count()).select_from(Call))
    results: dict[str, Any] = {
        "date": now.isoformat(timespec="seconds"),
        "machine": f"{os.cpu_count()} CPU {cpu_model()}",
        "load_avg_start": os.getloadavg(),
        "calls": calls,
        "zone": zone.key,
        "reports": [],
    }
    for days in (int(d) for d in args.days.split(",")):
        row = measure(db, settings, zone, now, days, args.rounds)
        log(f"{days}-day report: {row}")
        results["reports"].append(row)
    results["load_avg_end"] = os.getloadavg()
    db.dispose()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
        log(f"results written to {args.json}")


if __name__ == "__main__":
    main()
