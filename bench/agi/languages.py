"""The menu's remembered caller languages read again: the whole table against what changed.

Every FastAGI process keeps the numbers' remembered languages in memory and reads them again
each minute (agi_scripts/flows/services.py, DbLookups). This fills `caller_languages` with
`--numbers` rows changed over the past year, then times, in this process (CPU; the database
server's own not counted), the first read (the whole table, as every read was before) and the
reads again after another box remembered one more number (only what changed):

    .venv/bin/python bench/agi/languages.py --db postgres --numbers 300000
    .venv/bin/python bench/agi/languages.py --db sqlite --numbers 300000

Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))
sys.path.insert(0, str(HERE))

import run  # noqa: E402
from sqlalchemy import insert  # noqa: E402

from agi_scripts.flows.services import DbLookups  # noqa: E402
from call_router.db import Database  # noqa: E402
from call_router.flow_models import CallerLanguage  # noqa: E402
from call_router.models import utcnow  # noqa: E402


def fill(db: Database, numbers: int) -> None:
    start = utcnow() - timedelta(days=365)
    step = timedelta(days=365) / numbers
    rows = [
        {"caller_number": f"+7916{n:07d}", "language": "en", "updated_at": start + n * step}
        for n in range(numbers)
    ]
    with db.session() as session:
        session.execute(insert(CallerLanguage), rows)


def cpu_ms(fn: Callable[..., Any], *args: Any) -> float:
    began = time.process_time()
    fn(*args)
    return round(1000 * (time.process_time() - began), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--numbers", type=int, default=300_000)
    parser.add_argument("--again", type=int, default=5, help="reads again after the first")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agi-languages-bench-"))
    pg_name = f"hotline_bench_languages_{os.getpid()}"
    db = Database(run.bench_database(args.db, tmp, pg_name))
    try:
        db.upgrade()
        fill(db, args.numbers)
        menu = DbLookups(db, "RU", languages_ttl=0.0)  # stale at every look: reads each time
        elsewhere = DbLookups(db, "RU")
        whole = cpu_ms(menu.caller_language, "+79160000001")
        again = []
        for n in range(args.again):
            elsewhere.remember_language(f"+7495000{n:04d}", "en")
            again.append(cpu_ms(menu.caller_language, f"+7495000{n:04d}"))
        report = {
            "db": args.db,
            "numbers": args.numbers,
            "first_read_cpu_ms": whole,
            "read_again_cpu_ms": sorted(again),
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus, {run._cpu_model()}",
        }
        print(json.dumps(report))
    finally:
        db.dispose()
        if args.db == "postgres":
            run.drop_pg_database(pg_name)


if __name__ == "__main__":
    main()
