"""The call-log writer in a process of its own (agi_scripts/writer_process.py), on a real SQLite
call log: each call's order, nothing lost when the writer process is killed (its unsafe writes
are sent again to a new one) or when the FastAGI process stops or goes away, a kept write, and
the point of it all: a burst holding the writer's GIL does not stall the callers' loop.

The writer's own rules (batching, spool, retries, a bad write set aside) are CallWriter's,
tested in tests/unit/test_call_writer.py; the writer process runs that same class."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agi_scripts.call_writer import CallWriter
from agi_scripts.writer_process import WriterProcess, writer_ops
from call_router.db import Database
from call_router.models import Call, CallEvent
from tests.unit.test_call_writer import timeline

GIL_CHILD = Path(__file__).with_name("writer_child_gil.py")


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    url = f"sqlite:///{tmp_path / 'calls.db'}"
    # The writer process reads its settings from the environment, as under `hotline agi`.
    monkeypatch.setenv("HOTLINE_DATABASE_URL", url)
    monkeypatch.setenv("HOTLINE_CONFIG_FILE", "")
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path / "state"))
    database = Database(url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
async def writer(db: Database, tmp_path: Path) -> AsyncIterator[WriterProcess]:
    w = WriterProcess(tmp_path / "spool" / "agi.jsonl", ops=writer_ops())
    await w.start()
    yield w
    await w.stop()


def a_call(writer: WriterProcess | CallWriter, linkedid: str, steps: int) -> None:
    writer.submit("ensure_call", linkedid, caller_number="+74951234567", caller_name="Ivan")
    for step in range(steps):
        writer.submit("record_event", linkedid, kind="flow_step", key=f"flow:{step}", data={})


def counts(db: Database) -> tuple[int, int]:
    with db.session() as session:
        calls = session.scalar(select(func.count()).select_from(Call))
        events = session.scalar(select(func.count()).select_from(CallEvent))
    return int(calls or 0), int(events or 0)


async def test_each_calls_writes_keep_their_order(writer: WriterProcess, db: Database) -> None:
    for step in range(5):  # three calls' steps interleaved, as concurrent callers make them
        for n in range(3):
            if step == 0:
                writer.submit("ensure_call", f"c{n}", caller_number=None, caller_name=None)
            writer.submit("record_event", f"c{n}", kind="flow_step", key=f"s{step}", data={})
    assert await writer.idle(timeout=60)
    for n in range(3):
        assert timeline(db, f"c{n}") == [f"s{step}" for step in range(5)]
        assert writer.call_id(f"c{n}") is not None  # HOTLINE_CALL_ID can be set
    assert writer.backlog == 0 and writer.database_ok


async def test_writes_gather_and_go_to_the_writer_process_as_one_frame(
    writer: WriterProcess, db: Database
) -> None:
    sent: list[int] = []
    stream = writer._stream
    assert stream is not None
    write = stream.write

    def counting(data: bytes | bytearray | memoryview) -> None:
        sent.append(len(data))
        write(data)

    stream.write = counting  # type: ignore[method-assign]
    for n in range(50):
        a_call(writer, f"burst{n}", 3)
    assert not sent  # nothing sent from submit(): the caller's path does no I/O
    await asyncio.sleep(0)
    assert not sent  # not at every loop iteration either: they gather for `linger`
    for n in range(50, 60):
        a_call(writer, f"burst{n}", 3)
    await asyncio.sleep(writer.linger * 3)
    assert len(sent) == 1  # 240 writes, one frame
    assert await writer.idle(timeout=60)
    assert counts(db) == (60, 180)


async def test_a_killed_writer_process_is_replaced_and_nothing_is_lost(
    writer: WriterProcess, db: Database
) -> None:
    a_call(writer, "before", 2)
    assert await writer.idle(timeout=60)  # the writer process is up and writing
    for n in range(400):
        a_call(writer, f"k{n}", 6)
    await asyncio.sleep(writer.linger * 2)  # handed to the writer process...
    assert writer._unsafe, "the writes must not all be safe yet for this test to mean anything"
    proc = writer._proc
    assert proc is not None
    os.kill(proc.pid, signal.SIGKILL)  # ...which dies before writing (all of) them
    for n in range(20):
        a_call(writer, f"after{n}", 3)
    assert await writer.idle(timeout=90)
    assert writer.restarts == 1
    assert timeline(db, "before") == ["flow:0", "flow:1"]
    for n in range(400):
        assert timeline(db, f"k{n}") == [f"flow:{s}" for s in range(6)]
    for n in range(20):
        assert timeline(db, f"after{n}") == ["flow:0", "flow:1", "flow:2"]
    assert counts(db) == (421, 2 + 400 * 6 + 20 * 3)  # each once, none twice


async def test_an_orderly_stop_writes_everything(db: Database, tmp_path: Path) -> None:
    writer = WriterProcess(tmp_path / "spool" / "agi.jsonl", ops=writer_ops())
    await writer.start()
    for n in range(300):
        a_call(writer, f"s{n}", 4)
    await writer.stop()  # at once: the writer process has barely started
    assert counts(db) == (300, 1200)
    assert writer.backlog == 0


async def test_the_fastagi_process_gone_its_writer_process_writes_what_it_has(
    db: Database, tmp_path: Path
) -> None:
    writer = WriterProcess(tmp_path / "spool" / "agi.jsonl", ops=writer_ops())
    await writer.start()
    for n in range(200):
        a_call(writer, f"g{n}", 4)
    await asyncio.sleep(writer.linger * 2)
    proc = writer._proc
    assert proc is not None and writer._stream is not None
    # As if this process died: the writer process sees the end of its stream, nothing else.
    writer._stopping = True
    writer._stream.close()
    assert await asyncio.wait_for(proc.wait(), 60) == 0
    await writer.stop()
    assert counts(db) == (200, 800)


async def test_a_kept_write_is_on_disk_when_acknowledged(
    writer: WriterProcess, db: Database, tmp_path: Path
) -> None:
    a_call(writer, "meter", 1)
    kept = await asyncio.to_thread(
        writer.keep_from_thread, "record_event", "meter", 30.0, kind="reading", key="r1", data={}
    )
    assert kept
    assert await writer.idle(timeout=60)
    assert timeline(db, "meter") == ["flow:0", "r1"]
    with pytest.raises(ValueError):
        writer.submit("drop_table", "meter")


async def test_a_burst_holding_the_writers_gil_does_not_stall_the_callers_loop(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bug this process exists for: the writer's database work, in a thread, held the GIL
    the callers' loop needs (BENCHMARKS.md). Here every burst holds its GIL for a C loop that
    takes `hold` seconds; a loop sharing that GIL would stall that long at every burst."""
    n = 30_000_000
    started = time.perf_counter()
    sum(range(n))
    hold = time.perf_counter() - started
    assert hold > 0.15, "make the C loop longer on this machine"
    monkeypatch.setenv("HOTLINE_TEST_GIL_HOLD", str(n))
    writer = WriterProcess(
        tmp_path / "spool" / "agi.jsonl", ops=writer_ops(), argv=[sys.executable, str(GIL_CHILD)]
    )
    await writer.start()
    try:
        worst = await _worst_loop_lag_while(writer, calls=6)
    finally:
        await writer.stop()
    assert counts(db)[0] == 6
    assert worst < hold / 2, f"the loop stalled {worst:.3f}s; a burst held the GIL {hold:.3f}s"


async def _worst_loop_lag_while(writer: WriterProcess | CallWriter, calls: int) -> float:
    """Calls submitted one by one (each its own burst); the loop's worst lateness meanwhile."""
    loop = asyncio.get_running_loop()
    worst = 0.0
    for n in range(calls):
        a_call(writer, f"gil{n}", 1)
        deadline = loop.time() + 60
        while writer.backlog and loop.time() < deadline:
            before = loop.time()
            await asyncio.sleep(0.005)
            worst = max(worst, loop.time() - before - 0.005)
        assert await writer.idle(timeout=60)
    return worst
