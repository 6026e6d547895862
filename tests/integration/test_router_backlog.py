"""The router while its database is unreachable, on SQLite and PostgreSQL: events wait in the
backlog (memory, then the spool file) and are all written, in order, exactly once.

The call log's connection is cut and restored by the test (its transactions raise
OperationalError while "down", as psycopg does when PostgreSQL refuses connections); the real
PostgreSQL restart is tests/integration/test_database_outage_e2e.py. The same AMI traffic
written event by event into a fresh SQLite log is the reference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from call_router import health as health_report
from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.event_backlog import EventBacklog
from call_router.live_state import LiveState
from call_router.settings import Settings
from tests.unit.test_ami_events import FakeAsterisk, free_port, mixed_traffic, snapshot, wait_until


class Switch:
    """The database connection, cut and restored by the test."""

    def __init__(self, call_log: CallLog, monkeypatch: pytest.MonkeyPatch) -> None:
        self.down = False
        batch, run = call_log.batch, call_log.run

        @contextmanager
        def switched_batch() -> Iterator[None]:
            self.check()
            with batch():
                yield

        def switched_run(work: Callable[[Any], Any]) -> Any:
            self.check()
            return run(work)

        monkeypatch.setattr(call_log, "batch", switched_batch)
        monkeypatch.setattr(call_log, "run", switched_run)

    def check(self) -> None:
        if self.down:
            raise OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


class CountingAsterisk(FakeAsterisk):
    """Counts the channel snapshots asked for: one per catch-up with Asterisk."""

    snapshots = 0

    def _replies(self, action: dict[str, str]) -> list[dict[str, str]]:
        if action.get("Action", "").lower() == "coreshowchannels":
            self.snapshots += 1
        return super()._replies(action)


@pytest.fixture
def settings(database: Database, tmp_path: Path) -> Settings:
    return Settings(
        state_dir=tmp_path / "state",
        ami_port=free_port(),
        database_url=database.url,
        ami_writers=4,  # lanes on PostgreSQL: a call's events must keep their order through all
        ami_batch_size=5,
        router_backlog_memory=4,
        callback_min_wait=0,
    )


@pytest.fixture
async def live() -> Any:
    # Nothing listens here: Redis down too, as it may well be in the same outage.
    state = LiveState.from_url(f"redis://127.0.0.1:{free_port()}/0", "hotline-backlog")
    yield state
    await state.close()


@pytest.fixture
async def expected(tmp_path: Path, settings: Settings, live: LiveState) -> Any:
    reference = Database(f"sqlite:///{tmp_path / 'reference.db'}")
    reference.upgrade()
    one_by_one = AmiListener(settings, CallLog(reference, callback_min_wait=10), live)
    for event in mixed_traffic():
        await one_by_one.handle(event)
    yield snapshot(reference)
    reference.dispose()


def ended(call_log: CallLog, linkedids: set[str]) -> bool:
    return all(
        (call := call_log.get_call(linkedid)) is not None and call.ended_at is not None
        for linkedid in linkedids
    )


async def test_an_outage_holds_events_in_memory_and_on_disk_then_writes_them_all(
    database: Database,
    settings: Settings,
    live: LiveState,
    expected: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call_log = CallLog(database, callback_min_wait=10)
    switch = Switch(call_log, monkeypatch)
    listener = AmiListener(settings, call_log, live)
    asterisk = CountingAsterisk(channels=[])
    await asterisk.start(settings.ami_port)
    ready = asyncio.Event()
    task = asyncio.create_task(listener.run(ready=ready))
    events = mixed_traffic()
    before, during, after = events[:8], events[8:24], events[24:]
    try:
        await asyncio.wait_for(ready.wait(), 10)
        for event in before:
            await asterisk.send_event(event)
        await wait_until(lambda: len(snapshot(database)[0]) == 4, timeout=20)
        switch.down = True
        for event in during:
            await asterisk.send_event(event)
        await wait_until(lambda: len(listener.writer.backlog) >= len(during), timeout=20)
        await wait_until(lambda: not listener.health().database_reachable, timeout=20)
        health = health_report.read_router_report(settings)
        assert health is not None and not health.database_reachable
        assert health.spool_depth > 0  # past the memory bound: on disk
        for event in after:
            await asterisk.send_event(event)
        snapshots = asterisk.snapshots
        switch.down = False
        linkedids = {e["Linkedid"] for e in events}
        await wait_until(lambda: ended(call_log, linkedids), timeout=30)
        # Then the same catch-up with Asterisk's records as after a reconnect.
        await wait_until(lambda: asterisk.snapshots > snapshots, timeout=20)
        assert snapshot(database) == expected
        await wait_until(lambda: not listener.writer.backlog, timeout=10)
        health = health_report.read_router_report(settings)
        assert health is not None and health.database_reachable and health.backlog == 0
        assert settings.router_spool_path.read_bytes() == b""
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asterisk.stop()


async def test_shutdown_during_an_outage_spools_everything_and_the_next_start_writes_it(
    database: Database,
    settings: Settings,
    live: LiveState,
    expected: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    call_log = CallLog(database, callback_min_wait=10)
    switch = Switch(call_log, monkeypatch)
    switch.down = True
    listener = AmiListener(settings, call_log, live)
    consumer = asyncio.create_task(listener._consume())
    events = mixed_traffic()
    for event in events[:12]:
        listener._queue.put_nowait(event)
    await wait_until(lambda: len(listener.writer.backlog) >= 12, timeout=20)
    # The rest has only just arrived (not even dealt to a lane) when the router is stopped.
    for event in events[12:]:
        listener._queue.put_nowait(event)
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    listener._spool_pending()
    assert EventBacklog(settings.router_spool_path, 10).spool_depth == len(events)

    switch.down = False
    restarted = AmiListener(settings, call_log, live)
    assert restarted.writer.holding()  # the spool goes first, before any new event
    replayer = asyncio.create_task(restarted.writer.replay_forever())
    try:
        await wait_until(lambda: not restarted.writer.holding(), timeout=20)
    finally:
        replayer.cancel()
        await asyncio.gather(replayer, return_exceptions=True)
    assert snapshot(database) == expected


async def test_a_crash_in_the_middle_of_the_replay_adds_nothing_twice(
    database: Database, settings: Settings, live: LiveState, expected: Any
) -> None:
    call_log = CallLog(database, callback_min_wait=10)
    first = EventBacklog(settings.router_spool_path, memory_limit=1000)
    first.append(mixed_traffic())
    first.spill()
    listener = AmiListener(settings, call_log, live, backlog=first)
    for batch in range(3):  # three batches written; the third is never marked done: killed
        await listener.writer.apply(first.peek(7))
        if batch < 2:
            first.commit()

    restarted = EventBacklog(settings.router_spool_path, memory_limit=1000)
    assert len(restarted) == len(mixed_traffic())  # replayed from the spool's start
    listener = AmiListener(settings, call_log, live, backlog=restarted)
    while restarted:
        await listener.writer.apply(restarted.peek(7))
        restarted.commit()
    assert snapshot(database) == expected
