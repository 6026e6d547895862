"""The FastAGI call-log writer alone: CPU per call of one burst transaction.

What `CallWriter._write_batch` costs in this process (the database server's own CPU is not
counted) for bursts of `--calls` hotline calls, each the writes a keypad call makes (its
arrival, seven flow steps, its menu result), on SQLite or a fresh PostgreSQL database:

    .venv/bin/python bench/agi/writer.py --db sqlite --calls 5 20 50
    .venv/bin/python bench/agi/writer.py --db postgres --calls 5 20 50

Prints one JSON line per burst size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT))

from agi_scripts.call_writer import CallWriter  # noqa: E402
from agi_scripts.writer_common import Write, stamped  # noqa: E402
from call_router.call_log import CallLog  # noqa: E402
from call_router.db import Database  # noqa: E402
from call_router.models import utcnow  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
NODES = ("hours", "greeting", "incidents", "menu", "route_water", "menu_result", "queue")
_calls = 0


def call_writes() -> list[Write]:
    """The writes one keypad call submits, as the server submits them."""
    global _calls
    _calls += 1
    linkedid = f"1700000000.{_calls}"
    arrival = {
        "caller_number": f"+7495{_calls % 10_000_000:07d}",
        "caller_name": "Bench Caller",
        "channel": "PJSIP/pstn-00000001",
        "dialed_number": "500100",
    }
    writes = [Write("ensure_call", linkedid, stamped("ensure_call", arrival, utcnow))]
    for seq, node in enumerate(NODES, 1):
        step = {
            "kind": "flow_step",
            "key": f"flow:{seq}:flow_step",
            "data": {"flow": "hotline", "node": node, "type": "play", "next": "menu"},
        }
        writes.append(Write("record_event", linkedid, stamped("record_event", step, utcnow)))
    result = {"choice": "1", "intent": "water", "queue": "plumbing", "language": "ru"}
    writes.append(
        Write("record_menu_result", linkedid, stamped("record_menu_result", result, utcnow))
    )
    return writes


def measure(writer: CallWriter, calls: int, bursts: int) -> float:
    """CPU ms per call of `bursts` bursts of `calls` calls (after a few to warm up)."""
    for _ in range(5):
        writer._write_batch([w for _ in range(calls) for w in call_writes()])
    batches = [[w for _ in range(calls) for w in call_writes()] for _ in range(bursts)]
    start = time.process_time()
    for batch in batches:
        writer._write_batch(batch)
    return 1000 * (time.process_time() - start) / (calls * bursts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--calls", type=int, nargs="+", default=[5, 20, 50])
    parser.add_argument("--bursts", type=int, default=40)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="agi-writer-bench-"))
    name = f"hotline_bench_writer_{os.getpid()}"
    admin = None
    if args.db == "postgres":
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    else:
        url = f"sqlite:///{tmp / 'hotline.db'}"
    db = Database(url)
    try:
        db.upgrade()
        writer = CallWriter(CallLog(db), tmp / "spool.jsonl")
        for calls in args.calls:
            ms = measure(writer, calls, args.bursts)
            print(json.dumps({"db": args.db, "calls_per_burst": calls, "cpu_ms_per_call": ms}))
    finally:
        db.dispose()
        if admin is not None:
            from sqlalchemy import text

            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
