"""The router's catch-up after an outage outlives one failed try (found by a fault review,
2026-12-06: a CoreShowChannels that timed out while the AMI link stayed up ended the task, and
no catch-up ran again until the next reconnect, possibly days later)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.exc import OperationalError

from call_router import ami_listener, health
from call_router.ami_listener import AmiListener
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.listener_reconcile import ReconcileRequest
from call_router.live_state import LiveState
from call_router.reconcile import AsteriskRecords
from call_router.settings import Settings
from tests.conftest import free_port
from tests.unit.conftest import model_database


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    yield from model_database(tmp_path)


async def until(condition: Callable[[], bool], timeout: float = 15.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)


T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=30)


def router_with_one_unlogged_call(
    tmp_path: Path, db: Database, live: LiveState, number: str
) -> tuple[AmiListener, CallLog, str]:
    """A router (its clock at NOW) whose Asterisk records hold one call that met the
    fail-safe a minute after T0, unknown to the call log: the router, its log, the call."""
    log_dir = tmp_path / "asterisk-log"
    log_dir.mkdir()
    at = f"{T0.timestamp() + 60:.0f}"
    call = f"{at}.5"
    (log_dir / "queue_log").write_text(
        f"{at}|{call}|coordinator|NONE|HOTLINEAGIFAILED|FAILURE|500100\n"
        f"{at}|{call}|coordinator|NONE|ENTERQUEUE||{number}|1\n"
    )
    settings = Settings(state_dir=tmp_path / "state", ami_port=free_port())
    call_log = CallLog(db)
    listener = AmiListener(
        settings, call_log, live, clock=lambda: NOW, records=AsteriskRecords.in_log_dir(log_dir)
    )
    return listener, call_log, call


def request(heard_until: datetime) -> ReconcileRequest:
    done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    return ReconcileRequest(frozenset(), NOW, done, heard_until=heard_until)


class SlowThenFineAsterisk:
    """A connected AMI link whose first CoreShowChannels gets no reply in time (a busy
    Asterisk); Ping and every later CoreShowChannels are answered: the link stays up."""

    def __init__(self) -> None:
        self.core_show_channels = 0

    def send_action(self, action: dict[str, str], **_kw: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if action["Action"] == "CoreShowChannels":
            self.core_show_channels += 1
            if self.core_show_channels == 1:
                return future  # never answered: RECONCILE_TIMEOUT
            future.set_result([{"Response": "Success"}])
        else:
            future.set_result({"Response": "Success"})
        return future


async def test_a_failed_catch_up_does_not_end_the_catch_up_task_while_the_link_stays_up(
    tmp_path: Path, db: Database, live: LiveState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up (deferred reconcile after a database outage) whose CoreShowChannels times
    out once must be retried; and the next database outage must still be caught up."""
    monkeypatch.setattr(ami_listener, "RECONCILE_TIMEOUT", 0.1)
    settings = Settings(state_dir=tmp_path / "state", ami_port=free_port())
    listener = AmiListener(settings, CallLog(db), live)
    consumer = asyncio.create_task(listener._consume())
    asterisk = SlowThenFineAsterisk()
    catch_up = asyncio.create_task(listener._catch_up_when_due(asterisk))  # type: ignore[arg-type]
    try:
        listener.writer.catch_up_due.set()  # the reconnect's reconcile was deferred
        await until(lambda: asterisk.core_show_channels >= 1)  # tried: no answer in time
        listener.writer.catch_up_due.set()  # a later outage; the link still up
        # Tried again (after the back-off), not ended.
        await until(lambda: asterisk.core_show_channels >= 2 or catch_up.done())
        assert not catch_up.done(), "the catch-up task ended: no catch-up until a reconnect"
    finally:
        catch_up.cancel()
        consumer.cancel()
        await asyncio.gather(catch_up, consumer, return_exceptions=True)


async def test_a_search_for_unlogged_calls_that_failed_is_owed_to_the_next_catch_up(
    tmp_path: Path, db: Database, live: LiveState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reconnect's search for calls nobody logged met the database away. The catch-up
    that follows knows only that the link is up now: it must still search from when the
    router last heard everything, or the calls of the gap are never logged."""
    listener, call_log, call = router_with_one_unlogged_call(tmp_path, db, live, "+79160005001")
    away = OperationalError("SELECT", {}, ConnectionRefusedError("database is away"))
    real_run = call_log.run
    monkeypatch.setattr(call_log, "run", lambda work: (_ for _ in ()).throw(away))

    # The reconnect: heard everything until T0, then the database fails.
    await listener.reconciler.apply(request(T0))
    assert call_log.find_call_id(call) is None
    monkeypatch.setattr(call_log, "run", real_run)
    # The catch-up once the database is back: the link is up now.
    await listener.reconciler.apply(request(NOW))
    row = call_log.get_call(call)
    assert row is not None and row.caller_number == "+79160005001"


async def test_a_reconnect_during_a_database_outage_owes_the_search_to_the_catch_up(
    tmp_path: Path, db: Database, live: LiveState
) -> None:
    """The reconnect's request meets events waiting for the database: no catch-up runs then.
    The one that runs once they are written must still search from the reconnect's moment,
    and the router's report must keep that moment until it has (a kill meanwhile)."""
    listener, call_log, call = router_with_one_unlogged_call(tmp_path, db, live, "+79160005002")
    consumer = asyncio.create_task(listener._consume())
    try:
        listener.writer.db_reachable = False  # events wait for the database
        deferred = request(T0)
        listener._queue.put_nowait(deferred)
        assert await asyncio.wait_for(deferred.done, 10) == 0  # deferred, not run
        assert call_log.find_call_id(call) is None
        # The report written meanwhile keeps the moment the search starts from.
        listener._health.write_now()
        report = health.read_router_report(listener._settings)
        assert report is not None and report.heard_until == T0
        listener.writer.db_reachable = True
        # The catch-up, once the backlog is written: its own request knows only "now".
        await listener.reconciler.apply(request(NOW))
        row = call_log.get_call(call)
        assert row is not None and row.caller_number == "+79160005002"
        assert listener.reconciler.unlogged_since is None
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)


async def test_a_broken_search_for_unlogged_calls_does_not_stop_the_catch_up(
    tmp_path: Path, db: Database, live: LiveState, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A search that fails for another reason than the database (a bug, a bad record) is
    logged and stays owed; the open calls are still closed and live state rebuilt."""
    settings = Settings(state_dir=tmp_path / "state", ami_port=free_port())
    call_log = CallLog(db)
    call_log.ensure_call("1796000000.1", caller_number="+79160005003", caller_name=None,
                         started_at=T0)  # fmt: skip
    listener = AmiListener(settings, call_log, live, clock=lambda: NOW)

    def broken(_records: AsteriskRecords, _since: datetime) -> list[object]:
        raise ValueError("a record nobody expected")

    monkeypatch.setattr(AsteriskRecords, "failsafe_calls_since", broken)
    catch_up = request(T0)
    await listener.reconciler.apply(catch_up)
    assert catch_up.done.result() == 1  # the vanished open call was still closed
    row = call_log.get_call("1796000000.1")
    assert row is not None and row.ended_at is not None
    assert listener.reconciler.unlogged_since == T0


def test_the_known_calls_of_a_long_outage_are_asked_a_slice_at_a_time(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A day of a big FastAGI outage can hold more fail-safe calls than PostgreSQL takes
    bind parameters in one statement (65 535): the lookup is sliced (call_router/sql_in.py)."""
    from call_router import listener_reconcile, sql_in

    call_log = CallLog(db)
    for linkedid in ("1796000000.1", "1796000000.2", "1796000000.3"):
        call_log.ensure_call(linkedid, caller_number=None, caller_name=None, started_at=T0)
    monkeypatch.setattr(sql_in, "IN_SLICE", 2)
    wanted = ["1796000000.1", "1796000000.2", "1796000000.3", "1796000000.4"]
    known = call_log.run(lambda session: listener_reconcile._known(session, wanted))
    assert set(known) == {"1796000000.1", "1796000000.2", "1796000000.3"}
