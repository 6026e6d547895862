"""The router's consumer on SQLite and PostgreSQL: parallel writer lanes (PostgreSQL) keep each
call's events in order and give the same call log as writing event by event."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.router_writer import lane_index
from call_router.settings import Settings
from tests.unit.test_ami_events import (
    FakeAsterisk,
    free_port,
    mixed_traffic,
    snapshot,
    wait_until,
)


def test_every_event_of_a_call_goes_to_one_lane() -> None:
    events = mixed_traffic()
    for event in events:
        lanes = {lane_index(e, 4) for e in events if e.get("Linkedid") == event["Linkedid"]}
        assert len(lanes) == 1
    assert len({lane_index(e, 4) for e in events}) > 1  # the calls do spread out
    assert lane_index({"Event": "QueueMemberStatus"}, 4) == 0


async def test_streamed_events_give_the_same_log_as_event_by_event(
    database: Database, tmp_path: Path
) -> None:
    settings = Settings(
        state_dir=tmp_path / "state",
        ami_port=free_port(),
        database_url=database.url,
        ami_writers=4,
        callback_min_wait=0,
    )
    live = LiveState.from_url(f"redis://127.0.0.1:{free_port()}/0", "hotline-writers")
    events = mixed_traffic()
    reference = Database(f"sqlite:///{tmp_path / 'reference.db'}")
    reference.upgrade()
    one_by_one = AmiListener(settings, CallLog(reference, callback_min_wait=10), live)
    for event in events:
        await one_by_one.handle(event)

    call_log = CallLog(database, callback_min_wait=10)
    listener = AmiListener(settings, call_log, live)
    asterisk = FakeAsterisk(channels=[])
    await asterisk.start(settings.ami_port)
    ready = asyncio.Event()
    task = asyncio.create_task(listener.run(ready=ready))
    try:
        await asyncio.wait_for(ready.wait(), 10)
        for event in events:
            await asterisk.send_event(event)
        linkedids = {e["Linkedid"] for e in events}

        def all_ended() -> bool:
            return all(
                (call := call_log.get_call(linkedid)) is not None and call.ended_at is not None
                for linkedid in linkedids
            )

        await wait_until(all_ended, timeout=20)
        got, expected = snapshot(database), snapshot(reference)
        # The same calls, outcomes, timelines and callback entries (ids aside).
        assert got == expected
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await asterisk.stop()
        await live.close()
        reference.dispose()


async def test_an_event_that_cannot_be_written_is_counted_as_an_error(
    database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One event the handlers cannot write (a stand-in for a handler's bug) in a batch: the
    # others are written one by one, that one is lost - and counted, so the health report and
    # /metrics (hotline_router_failed_events_total) show the error instead of only a log line.
    settings = Settings(
        state_dir=tmp_path / "state", ami_port=free_port(), database_url=database.url
    )
    live = LiveState.from_url(f"redis://127.0.0.1:{free_port()}/0", "hotline-writer-errors")
    call_log = CallLog(database, callback_min_wait=10)
    listener = AmiListener(settings, call_log, live)
    write_batch = listener.writer._write_batch

    async def failing(events: Sequence[Mapping[str, str]]) -> None:
        if any(event.get("Uniqueid") == "poison" for event in events):
            raise ValueError("the handler cannot take this event")
        await write_batch(events)

    monkeypatch.setattr(listener.writer, "_write_batch", failing)
    events = mixed_traffic()
    poison = {**events[0], "Uniqueid": "poison"}
    try:
        await listener.writer.apply([*events[:5], poison, *events[5:]])
        assert listener.writer.failed_events == 1
        assert listener.health().failed_events == 1
        assert all(call_log.get_call(e["Linkedid"]) is not None for e in events)
    finally:
        await live.close()
