"""The menu's database reads (agi_scripts/handlers/hotline.py `_read`,
agi_scripts/database_guard.py) when the database is away, and how a failure is logged."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import structlog
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from agi_scripts.database_guard import THREADS, DatabaseGuard
from agi_scripts.flows.snapshots import ReadClaim
from agi_scripts.handlers.hotline import _read
from call_router.db import Database

ROOT = Path(__file__).resolve().parents[2]


def away(_number: str) -> str:
    raise OperationalError("SELECT", {}, ConnectionRefusedError("database is away"))


async def test_a_failed_read_is_unknown_and_logged_without_a_traceback() -> None:
    # A traceback rendered on the FastAGI event loop (structlog's console renderer) took ~2 s
    # of CPU on the test machine: every other caller's AGI replies waited, and under load
    # their ANSWER timed out (agi_out_of_step) and the calls fell to the fail-safe.
    ctx: Any = SimpleNamespace(log=structlog.get_logger("test"), flows=None)
    with capture_logs() as logs:
        found = await _read(ctx, "caller_language", away, "+74951119701")
    assert found is None
    (entry,) = logs
    assert entry["event"] == "database_read_failed" and entry["what"] == "caller_language"
    assert "database is away" in entry["error"]
    assert "exc_info" not in entry


def guarded(guard: DatabaseGuard) -> Any:
    """A call's context whose menus share `guard` (as FlowServices.database)."""
    return SimpleNamespace(log=structlog.get_logger("test"), flows=SimpleNamespace(database=guard))


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    async with asyncio.timeout(10):
        while not condition():
            await asyncio.sleep(0.01)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database(f"sqlite:///{tmp_path / 'up.db'}")
    yield db
    db.dispose()


async def test_the_menu_stops_reading_a_database_that_is_away_then_reads_again(
    database: Database,
) -> None:
    # Before, every caller's every lookup tried the database: a connection attempt and a
    # logged error each. At 50 callers the FastAGI server served none in 30 s with the
    # database away (BENCHMARKS.md, "The database away").
    tries: list[str] = []
    up = False

    def language(number: str) -> str:
        tries.append(number)
        if not up:
            away(number)
        with database.session() as session:  # the database answers a statement
            return str(session.execute(text("SELECT 'en'")).scalar_one())

    clock = Clock()
    guard = DatabaseGuard(threshold=3, retry_after=5.0, clock=clock)
    ctx = guarded(guard)
    with capture_logs() as logs:
        found = [
            await _read(ctx, "caller_language", language, f"+7495111970{n}") for n in range(10)
        ]
    assert found == [None] * 10
    assert len(tries) == 3, "asked again after the database was known to be away"
    assert guard.away and guard.skipped == 7
    events = [entry["event"] for entry in logs]
    assert events == ["database_read_failed"] * 3 + ["database_away_menu_stops_reading"]

    clock.now += 5.0  # the retry time: one read tries; still away, so the menu stops again
    with capture_logs() as logs:
        assert await _read(ctx, "caller_language", language, "+74951119797") is None
        assert await _read(ctx, "caller_language", language, "+74951119798") is None
    assert len(tries) == 4 and guard.away
    assert [entry["event"] for entry in logs] == ["database_read_failed"]

    up = True
    clock.now += 5.0
    with capture_logs() as logs:
        assert await _read(ctx, "caller_language", language, "+74951119799") == "en"
    assert [entry["event"] for entry in logs] == ["database_back_menu_reads_again"]
    assert len(tries) == 5 and not guard.away


async def test_an_answer_from_memory_is_not_the_database_being_back() -> None:
    # A read that answers without the database (from memory, or swallowing its own error)
    # must not resume reading: the next callers would each try a database still away.
    clock = Clock()
    guard = DatabaseGuard(threshold=1, retry_after=5.0, clock=clock)
    log = structlog.get_logger("test")
    assert await guard.read(log, "caller_language", away, "+7", timeout=1.0) is None
    assert guard.away
    clock.now += 5.0
    assert await guard.read(log, "tenant_decision", lambda: "from memory", timeout=1.0) == (
        "from memory"
    )
    tries: list[str] = []
    await guard.read(log, "caller_language", lambda n: tries.append(n) or away(n), "+7", timeout=1)
    assert tries == ["+7"], "the next read is the one that tries"
    assert guard.away


async def test_actions_are_tried_while_the_database_is_away() -> None:
    # A meter reading keeps itself in the writer's spool when the database is away
    # (agi_scripts/flows/actions.py): skipping the action would lose it.
    guard = DatabaseGuard(threshold=1, retry_after=60.0)
    log = structlog.get_logger("test")
    await guard.read(log, "caller_language", away, "+7", timeout=1.0)
    assert guard.away
    kept: list[str] = []
    assert await guard.act(log, "run", lambda r: kept.append(r) or "spooled", "123", timeout=1.0)
    assert kept == ["123"] and guard.away


async def test_a_caller_hanging_up_during_a_slow_read_still_counts_it() -> None:
    # A cancelled caller's read must still count: callers who hang up on a silent database
    # would otherwise keep the menu asking it. The attempt finishes on its own, and its
    # timeout counts.
    release = threading.Event()

    def silent(_number: str) -> str:
        release.wait(10)
        return "en"

    guard = DatabaseGuard(threshold=1, retry_after=60)
    try:
        caller = asyncio.create_task(
            guard.read(structlog.get_logger("test"), "caller_language", silent, "+7", timeout=0.2)
        )
        await asyncio.sleep(0)  # the read has started
        caller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await caller
        await wait_until(lambda: guard.away, "the slow read's timeout to count")
    finally:
        release.set()


async def test_reads_are_not_queued_behind_threads_a_hung_database_holds() -> None:
    release = threading.Event()
    started: list[str] = []

    def hung(number: str) -> str:
        started.append(number)
        release.wait(10)
        return "en"

    guard = DatabaseGuard(threshold=1000, retry_after=60)
    log = structlog.get_logger("test")
    try:
        for n in range(THREADS):  # every thread held, each caller gave up after 0.1 s
            assert await guard.read(log, "caller_language", hung, f"+7{n}", timeout=0.1) is None
        assert await guard.read(log, "caller_language", hung, "+79", timeout=0.1) is None
        assert len(started) == THREADS and guard.skipped == 1
    finally:
        release.set()
    await wait_until(lambda: guard.read_threads_free, "the threads to come back")


async def test_a_burst_of_reads_on_a_database_that_answers_waits_its_turn() -> None:
    # More reads at once than threads, nothing failing: they queue, none is skipped.
    release = threading.Event()

    def slow(n: int) -> int:
        release.wait(10)
        return n

    guard = DatabaseGuard()
    log = structlog.get_logger("test")
    reads = [
        asyncio.create_task(guard.read(log, "caller_language", slow, n, timeout=10))
        for n in range(THREADS + 4)
    ]
    await asyncio.sleep(0)  # every read handed to the threads or queued for them
    release.set()
    assert await asyncio.gather(*reads) == list(range(THREADS + 4))
    assert guard.skipped == 0


async def test_a_bug_is_not_the_database_being_away() -> None:
    tries: list[str] = []

    def broken(number: str) -> str:
        tries.append(number)
        raise ValueError("a bug in the lookup")

    guard = DatabaseGuard(threshold=2, retry_after=60)
    with capture_logs() as logs:
        for n in range(5):
            assert await _read(guarded(guard), "caller_language", broken, f"+7{n}") is None
    assert len(tries) == 5 and not guard.away
    # With its traceback: a bug is worth reading about, and rendering it plainly is cheap.
    assert all(entry["exc_info"] for entry in logs)


def test_a_claim_to_refresh_whose_read_never_ran_lapses() -> None:
    # The menu claims a stale value's refresh for one caller (the others take what memory
    # has); while the database is away that caller's read is skipped and never releases the
    # claim. Before, nobody refreshed again: that process announced old incidents for good.
    clock = Clock()
    claim = ReadClaim(lapses=15.0, clock=clock)
    assert claim.take()
    assert not claim.take()  # the read is under way (or was skipped)
    clock.now += 15.0
    assert claim.take(), "the claim lapsed: this caller refreshes"
    claim.release()
    assert claim.take()


def test_log_lines_show_a_traceback_without_local_values(tmp_path: Path) -> None:
    # structlog's default renders every frame's locals (rich): ~2 s of CPU per traceback on
    # the event loop every caller's menu shares, and callers' numbers or a database URL's
    # password in the log. Every Hotline command logs through hotline.cli's setup.
    script = (
        "from hotline.cli import _process_setup\n"
        "import structlog\n"
        "_process_setup()\n"
        "def lookup():\n"
        "    password = 'local-secret-' + 'value'\n"
        "    raise ValueError('the lookup failed')\n"
        "try:\n"
        "    lookup()\n"
        "except ValueError:\n"
        "    structlog.get_logger().exception('lookup_failed')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # stdout is for --json
    assert "lookup_failed" in done.stderr and "ValueError: the lookup failed" in done.stderr
    assert 'File "<string>", line 6, in lookup' in done.stderr
    assert "local-secret-value" not in done.stderr
