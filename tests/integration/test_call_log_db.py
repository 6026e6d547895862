"""The call log and callback list against real SQLite and PostgreSQL (both via the migration)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from call_router.call_log import CallLog
from call_router.callback_intake import open_or_attach
from call_router.callback_list import list_callbacks
from call_router.callbacks import CALLBACK_CLOSED
from call_router.db import Database
from call_router.models import CALLBACK_OPEN, Call, Callback, CallEvent

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def call_row(db: Database, linkedid: str) -> Call:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == linkedid)).one()
        session.expunge(call)
        return call


def count(db: Database, model: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_ensure_call_is_idempotent_cleans_caller_id_and_keeps_earliest_start(
    database: Database,
) -> None:
    log = CallLog(database, clock=lambda: at(100))

    first = log.ensure_call(
        "1700000000.1",
        caller_number="8 (495) 123-45-67",
        caller_name='"Иван\r\nПетров\x00"',
        channel="PJSIP/pstn-00000001",
        dialed_number="500100",
        started_at=at(5),
    )
    again = log.ensure_call(
        "1700000000.1", caller_number="+74951234567", caller_name=None, started_at=at(1)
    )

    assert again == first
    assert count(database, Call) == 1
    call = call_row(database, "1700000000.1")
    assert call.caller_number == "+74951234567"
    assert call.caller_number_raw == "8 (495) 123-45-67"
    assert call.caller_name == "Иван Петров"
    assert call.channel == "PJSIP/pstn-00000001"
    assert call.dialed_number == "500100"
    assert call.started_at == at(1)


def test_concurrent_writers_create_one_row(database: Database) -> None:
    log = CallLog(database)
    ids: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def writer() -> None:
        try:
            start.wait()
            ids.append(log.ensure_call("1700000000.2", caller_number="1001", caller_name=None))
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert len(set(ids)) == 1
    assert count(database, Call) == 1


def test_record_event_is_idempotent_on_call_and_key(database: Database) -> None:
    log = CallLog(database, clock=lambda: at(0))
    log.ensure_call("L1", caller_number="1001", caller_name=None)

    assert log.record_event("L1", "ring", key="ring:op1", data={"operator": "op1"}) is True
    assert log.record_event("L1", "ring", key="ring:op1", data={"operator": "op1"}) is False
    assert log.record_event("unknown-call", "ring", key="ring:op1") is False
    assert count(database, CallEvent) == 1


def test_menu_result_is_stored_and_creates_a_missing_row(database: Database) -> None:
    log = CallLog(database, clock=lambda: at(0))

    log.record_menu_result(
        "L2", choice="1", intent="water", queue="plumbing", language="ru", at=at(12)
    )
    assert log.queue_planned("L2", queue="plumbing") is True
    assert log.queue_planned("no-such-call", queue="plumbing") is False
    log.ensure_call("L2", caller_number="+79161234567", caller_name="Anna", started_at=at(0))

    call = call_row(database, "L2")
    assert (call.menu_choice, call.intent, call.queue, call.language) == (
        "1",
        "water",
        "plumbing",
        "ru",
    )
    assert call.menu_ended_at == at(12)
    # The AGI wrote first without caller ID; the later Newchannel data filled it in.
    assert call.caller_number == "+79161234567"
    assert call.started_at == at(0)


def test_answered_call_gets_outcome_wait_talk_and_closes_an_open_callback(
    database: Database,
) -> None:
    log = CallLog(database)
    with database.session() as session:
        open_or_attach(
            session, caller_number="+74951234567", reason="abandoned_in_queue",
            queue="plumbing", call_id=None, now=at(-3600),
        )  # fmt: skip
    log.ensure_call("L3", caller_number="84951234567", caller_name=None, started_at=at(0))
    log.queue_joined("L3", queue="plumbing", key="join", at=at(10))
    log.agent_connected("L3", queue="plumbing", operator="ivanov", key="c1", at=at(25))
    log.agent_completed(
        "L3", queue="plumbing", operator="ivanov", key="done", at=at(85), reason="agent",
        talk_time=60,
    )  # fmt: skip
    ended = log.call_ended("L3", cause="Normal Clearing", at=at(86))

    assert ended is not None
    assert (ended.outcome, ended.wait_seconds, ended.talk_seconds, ended.hangup_by) == (
        "answered",
        15,
        60,
        "agent",
    )
    assert ended.operator == "ivanov"
    assert log.call_ended("L3", cause="Normal Clearing", at=at(90)) is None
    with database.session() as session:
        (entry,) = list_callbacks(session)
        assert entry.status == CALLBACK_CLOSED
        assert entry.closed_at == at(25)


def test_abandons_make_one_callback_per_number_and_replays_do_not_count(
    database: Database,
) -> None:
    log = CallLog(database)
    for linkedid, raw_number, start in (("A1", "+7 495 123 45 67", 0), ("A2", "8495 1234567", 600)):
        log.ensure_call(linkedid, caller_number=raw_number, caller_name=None, started_at=at(start))
        log.queue_joined(linkedid, queue="heating", key="join", at=at(start + 5))
        log.queue_abandoned(linkedid, queue="heating", key="abandon", at=at(start + 50))
        log.call_ended(linkedid, cause="Normal Clearing", at=at(start + 50))
    # A replay of the second call's events changes nothing.
    assert log.queue_abandoned("A2", queue="heating", key="abandon", at=at(650)) is None
    assert log.call_ended("A2", cause="Normal Clearing", at=at(650)) is None

    with database.session() as session:
        (entry,) = list_callbacks(session, status=CALLBACK_OPEN)
        assert entry.caller_number == "+74951234567"
        assert entry.attempts == 2
        assert entry.reason == "abandoned_in_queue"
        assert entry.queue == "heating"
        assert entry.last_call_id == log.find_call_id("A2")
    call = call_row(database, "A2")
    assert (call.outcome, call.wait_seconds, call.hangup_by) == ("abandoned_in_queue", 45, "caller")


def test_anonymous_and_short_waits_get_no_callback(database: Database) -> None:
    log = CallLog(database, callback_min_wait=30)
    log.ensure_call("N1", caller_number="anonymous", caller_name=None, started_at=at(0))
    log.queue_joined("N1", queue="lift", key="join", at=at(5))
    log.call_ended("N1", cause="Normal Clearing", at=at(60))
    log.ensure_call("N2", caller_number="+79161234567", caller_name=None, started_at=at(0))
    log.queue_joined("N2", queue="lift", key="join", at=at(5))
    log.call_ended("N2", cause="Normal Clearing", at=at(20))

    assert count(database, Callback) == 0
    assert call_row(database, "N1").outcome == "abandoned_in_queue"
    with database.session() as session:
        kinds = session.scalars(
            select(CallEvent.kind).join(Call).where(Call.linkedid == "N1")
        ).all()
    assert "callback_skipped" in kinds


def test_menu_hangup_and_queue_timeout_outcomes(database: Database) -> None:
    log = CallLog(database)
    log.ensure_call("M1", caller_number="1001", caller_name=None, started_at=at(0))
    menu = log.call_ended("M1", cause="Normal Clearing", at=at(7))
    log.ensure_call("T1", caller_number="+79161112233", caller_name=None, started_at=at(0))
    log.queue_joined("T1", queue="meters", key="join", at=at(3))
    log.record_event("T1", "queue_status", key="qs", at=at(303), data={"status": "TIMEOUT"})
    timeout = log.call_ended("T1", cause="Normal Clearing", at=at(310))

    assert menu is not None and (menu.outcome, menu.hangup_by) == ("abandoned_in_menu", "caller")
    assert timeout is not None
    assert (timeout.outcome, timeout.hangup_by) == ("queue_timeout", "system")
    with database.session() as session:
        (entry,) = list_callbacks(session)
        assert (entry.caller_number, entry.reason) == ("+79161112233", "queue_timeout")


def test_open_or_attach_race_leaves_one_open_entry(database: Database) -> None:
    attempts = 6
    start = threading.Barrier(attempts)
    errors: list[BaseException] = []

    def miss(call_number: int) -> None:
        try:
            start.wait()
            with database.session() as session:
                open_or_attach(
                    session, caller_number="+79160000001", reason="abandoned_in_queue",
                    queue="duty", call_id=None, now=at(call_number),
                )  # fmt: skip
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=miss, args=(n,)) for n in range(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    with database.session() as session:
        entries = list_callbacks(session)
        assert len(entries) == 1
        assert entries[0].attempts == attempts


def test_reconciled_call_is_closed_by_the_system(database: Database) -> None:
    log = CallLog(database)
    log.ensure_call("R1", caller_number="1001", caller_name=None, started_at=at(0))
    log.queue_joined("R1", queue="duty", key="join", at=at(2))

    assert [call.linkedid for call in log.open_calls()] == ["R1"]
    closed = log.call_ended("R1", cause="reconciled", at=at(40), reconciled=True)

    assert closed is not None and closed.hangup_by == "system"
    assert log.open_calls() == []
    # The real hang-up arriving later does not reopen or re-finalize the call.
    assert log.call_ended("R1", cause="Normal Clearing", at=at(41)) is not None
    assert call_row(database, "R1").ended_at == at(40)
