"""The FastAGI call-log writer (agi_scripts/call_writer.py) on a real SQLite call log.

A database outage is an OperationalError from the call log, as SQLAlchemy raises it when the
server is away or the file is locked; a slowed (locked) database through the real Asterisk is
in tests/integration/test_agi_under_pressure.py, a PostgreSQL outage through the real stack in
tests/integration/test_database_outage_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from agi_scripts.call_writer import CallWriter
from agi_scripts.flows.actions import DEFERRED_STORE, store_deferred_reading
from agi_scripts.writer_common import Write
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import Call, CallEvent


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'calls.db'}")
    database.upgrade()
    yield database
    database.dispose()


class FlakyCallLog(CallLog):
    """A call log whose database is away while `down` is set."""

    down = False
    attempts = 0

    def ensure_calls(self, arrivals: Any) -> dict[str, int]:
        self.attempts += 1
        if self.down:
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database is away"))
        return super().ensure_calls(arrivals)


@pytest.fixture
def call_log(db: Database) -> FlakyCallLog:
    return FlakyCallLog(db)


@pytest.fixture
async def writer(call_log: FlakyCallLog, tmp_path: Path) -> AsyncIterator[CallWriter]:
    w = CallWriter(
        call_log,
        tmp_path / "spool" / "agi.jsonl",
        retry_max=0.2,
        ops={DEFERRED_STORE: store_deferred_reading},  # as the server wires it
    )
    await w.start()
    yield w
    await w.stop()


def timeline(db: Database, linkedid: str) -> list[str]:
    with db.session() as session:
        return list(
            session.scalars(
                select(CallEvent.key)
                .join(Call)
                .where(Call.linkedid == linkedid)
                .order_by(CallEvent.id)
            )
        )


def a_call(writer: CallWriter, linkedid: str, steps: int) -> None:
    writer.submit("ensure_call", linkedid, caller_number="+74951234567", caller_name="Ivan")
    for n in range(steps):
        writer.submit("record_event", linkedid, kind="flow_step", key=f"flow:{n}", data={"n": n})
    writer.submit(
        "record_menu_result", linkedid, choice="3", intent="heating", queue="heating", language="ru"
    )


async def test_each_calls_writes_keep_their_order(writer: CallWriter, db: Database) -> None:
    for n in range(12):  # interleaved, as concurrent calls submit them
        for linkedid in ("a.1", "b.2", "c.3"):
            if n == 0:
                writer.submit("ensure_call", linkedid, caller_number=None, caller_name=None)
            writer.submit("record_event", linkedid, kind="flow_step", key=f"flow:{n}", data={})
    assert await writer.idle(timeout=10)
    for linkedid in ("a.1", "b.2", "c.3"):
        assert timeline(db, linkedid) == [f"flow:{n}" for n in range(12)]


async def test_a_burst_of_calls_is_one_transaction(writer: CallWriter, db: Database) -> None:
    before = writer.batches
    for n in range(100):  # submitted without yielding: the writer sees them as one burst
        a_call(writer, f"burst.{n}", steps=8)
    assert await writer.idle(timeout=10)
    assert writer.batches - before == 1
    with db.session() as session:
        calls = session.scalars(select(Call).where(Call.linkedid.like("burst.%"))).all()
        assert len(calls) == 100
        assert {(c.queue, c.intent, c.menu_choice) for c in calls} == {("heating", "heating", "3")}
    assert len(timeline(db, "burst.42")) == 8 + 1  # the steps and the menu result
    assert writer.call_id("burst.42") == next(c.id for c in calls if c.linkedid == "burst.42")


async def test_a_database_outage_is_retried_from_the_spool(
    writer: CallWriter, call_log: FlakyCallLog, db: Database
) -> None:
    call_log.down = True
    a_call(writer, "outage.1", steps=3)
    # The failed burst moves to the spool on disk (a killed process would lose nothing).
    while call_log.attempts < 2:
        await writer.idle(timeout=0.1)
    assert writer.spooled == 5 and not writer.database_ok
    assert writer.spool_path.read_text().count("\n") == 5
    a_call(writer, "outage.2", steps=2)  # while away: appended to the spool, in order
    assert writer.spooled == 9
    assert timeline(db, "outage.1") == []

    call_log.down = False
    assert await writer.idle(timeout=10)
    assert timeline(db, "outage.1") == ["flow:0", "flow:1", "flow:2", "menu_result"]
    assert timeline(db, "outage.2") == ["flow:0", "flow:1", "menu_result"]
    assert writer.backlog == 0 and writer.database_ok
    assert writer.spool_path.read_text() == ""


def late_steps(linkedid: str, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("record_event", linkedid, {"kind": "flow_step", "key": f"late:{n}", "data": {}})
        for n in range(count)
    ]


async def test_a_frame_of_writes_is_one_spool_append_while_the_spool_is_in_use(
    writer: CallWriter, call_log: FlakyCallLog, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer process hands its writer a whole frame at a time: while the spool holds
    older writes (an outage, a writer fallen behind), the frame is one append (one write to
    the file), not one per write."""
    call_log.down = True
    a_call(writer, "frame.1", steps=1)
    while call_log.attempts < 2:
        await writer.idle(timeout=0.1)
    assert writer.spooled == 3
    appends: list[int] = []
    append = writer._spool.append

    def counted(records: Any, **kwargs: Any) -> int:
        appends.append(1)
        return append(records, **kwargs)

    monkeypatch.setattr(writer._spool, "append", counted)
    writer.submit_many(late_steps("frame.1", 50))
    assert len(appends) == 1 and writer.spooled == 53
    call_log.down = False
    assert await writer.idle(timeout=10)
    late = [f"late:{n}" for n in range(50)]
    assert timeline(db, "frame.1") == ["flow:0", "menu_result", *late]


async def test_a_frame_larger_than_the_memory_left_is_split_in_order(
    call_log: FlakyCallLog, db: Database, tmp_path: Path
) -> None:
    writer = CallWriter(call_log, tmp_path / "spool" / "agi.jsonl", memory_limit=10)
    await writer.start()
    try:
        a_call(writer, "split.1", steps=2)  # 4 writes in memory
        writer.submit_many(late_steps("split.1", 20))  # 6 more fit, 14 to the spool
        assert writer.unsafe == 10 and writer.spooled == 14
        assert await writer.idle(timeout=10)
    finally:
        await writer.stop()
    late = [f"late:{n}" for n in range(20)]
    assert timeline(db, "split.1") == ["flow:0", "flow:1", "menu_result", *late]


async def test_orderly_stop_writes_everything(call_log: FlakyCallLog, tmp_path: Path) -> None:
    w = CallWriter(call_log, tmp_path / "agi.jsonl")
    await w.start()
    for n in range(300):
        a_call(w, f"stop.{n}", steps=5)
    await w.stop()  # at once: nothing submitted may be lost
    assert w.backlog == 0
    with call_log._db.session() as session:
        assert session.query(Call).filter(Call.linkedid.like("stop.%")).count() == 300
        assert session.query(CallEvent).count() == 300 * 6


async def test_a_spool_left_behind_is_replayed_at_start(
    call_log: FlakyCallLog, db: Database, tmp_path: Path
) -> None:
    spool = tmp_path / "agi.jsonl"
    first = CallWriter(call_log, spool, retry_max=0.2)
    await first.start()
    call_log.down = True
    a_call(first, "left.1", steps=4)
    await first.stop(timeout=0.5)  # the database never came back
    assert spool.read_text().count("\n") == 6

    call_log.down = False
    second = CallWriter(call_log, spool)
    await second.start()
    assert await second.idle(timeout=10)
    await second.stop()
    assert timeline(db, "left.1") == ["flow:0", "flow:1", "flow:2", "flow:3", "menu_result"]
    assert spool.read_text() == ""


async def test_a_torn_last_line_left_by_a_crash_does_not_swallow_the_next_write(
    call_log: FlakyCallLog, db: Database, tmp_path: Path
) -> None:
    # Killed in the middle of an append: the spool ends in half a line.
    spool = tmp_path / "agi.jsonl"
    spool.write_text('{"op": "ensure_call", "linkedid": "torn.0", "args": {"caller_nu')
    call_log.down = True
    w = CallWriter(call_log, spool, retry_max=0.2)
    await w.start()
    a_call(w, "torn.1", steps=2)  # the database is away: to the spool, after the torn line
    while call_log.attempts < 2:
        await w.idle(timeout=0.1)
    assert w.spooled == 4
    call_log.down = False
    assert await w.idle(timeout=10)
    await w.stop()
    assert timeline(db, "torn.1") == ["flow:0", "flow:1", "menu_result"]
    assert spool.read_text() == ""


async def test_a_bad_write_is_set_aside_and_the_rest_are_written(
    writer: CallWriter, db: Database
) -> None:
    a_call(writer, "good.1", steps=1)
    # A queue that is not text: a bug somewhere upstream, not a database outage.
    writer.submit("record_speech", "good.1", transcript="x", intent=None, confidence=float("nan"),
                  utterance_path={"not": "a path"})  # fmt: skip
    a_call(writer, "good.2", steps=1)
    assert await writer.idle(timeout=10)
    assert timeline(db, "good.1") == ["flow:0", "menu_result"]
    assert timeline(db, "good.2") == ["flow:0", "menu_result"]
    assert writer.rejected == 1
    rejected = writer.spool_path.with_suffix(".rejected").read_text().splitlines()
    assert json.loads(rejected[0])["write"]["op"] == "record_speech"


def test_an_unknown_write_is_refused_at_once(call_log: FlakyCallLog, tmp_path: Path) -> None:
    w = CallWriter(call_log, tmp_path / "agi.jsonl")
    with pytest.raises(ValueError, match="unknown call-log write"):
        w.submit("drop_table", "x.1")


async def test_a_confirmed_meter_reading_survives_a_database_outage(
    writer: CallWriter, db: Database, tmp_path: Path
) -> None:
    """meter_store with the database away: the reading is on disk (fsynced) before the caller
    hears "saved", and stored, once, when the database is back."""
    from datetime import UTC, datetime

    from agi_scripts.flows.actions import MeterActions
    from agi_scripts.flows.runtime import ActionCall
    from call_router.flows.schema import ActionArgs
    from call_router.meter_models import MeterReading

    writer.submit("ensure_call", "meter.1", caller_number="+74951234567", caller_name=None)
    away = Database(f"sqlite:///{tmp_path / 'no-such-dir' / 'calls.db'}")  # cannot be opened
    actions = MeterActions(away, "RU", defer=writer.keep_from_thread)
    call = ActionCall(caller_number="+74951234567", linkedid="meter.1", now=datetime.now(UTC))
    variables = {"payer": "1234567", "meter": "cold_water", "reading": "00421"}

    result = await asyncio.to_thread(actions.run, "meter_store", ActionArgs(), variables, call)

    assert result.outcome == "ok"
    assert await writer.idle(timeout=10)
    with db.session() as session:
        rows = session.scalars(select(MeterReading)).all()
        call_id = session.scalar(select(Call.id).where(Call.linkedid == "meter.1"))
    assert [(r.payer_code, r.meter, r.value, r.call_id) for r in rows] == [
        ("1234567", "cold_water", 421, call_id)
    ]
    # A replay of the same spooled write (a crash before the spool was emptied) adds nothing.
    line = Write(
        "store_meter_reading",
        "meter.1",
        {
            "payer": "1234567",
            "meter": "cold_water",
            "digits": "00421",
            "at": call.now.isoformat(),
            "caller_number": "+74951234567",
            "max_monthly_growth": {},
        },
    )
    with writer.call_log.batch():
        writer._apply(line)
    with db.session() as session:
        assert session.query(MeterReading).count() == 1

    # Other actions fail as before (the flow's on_error: the coordinator helps).
    with pytest.raises(OperationalError):
        await asyncio.to_thread(actions.run, "meter_last", ActionArgs(), variables, call)
