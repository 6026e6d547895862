"""The FastAGI writer's burst statements (CallLog.ensure_calls / record_events /
apply_menu_results) on SQLite and PostgreSQL: what they store is what the one-at-a-time ORM
path stores, in submission order, idempotently, with call ids handed in or looked up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from call_router.call_log import CallLog
from call_router.call_log_core import CallArrival, MenuResult, TimelineEntry
from call_router.db import Database
from call_router.models import Call, CallEvent

T0 = datetime(2026, 12, 5, 4, 0, 1, 123456, tzinfo=UTC)


def _events(db: Database, linkedid: str) -> list[tuple[str, str, datetime, dict[str, object]]]:
    with db.session() as session:
        rows = session.execute(
            select(CallEvent.kind, CallEvent.key, CallEvent.at, CallEvent.data)
            .join(Call)
            .where(Call.linkedid == linkedid)
            .order_by(CallEvent.id)
        )
        return [(kind, key, at, data) for kind, key, at, data in rows]


def test_a_burst_stores_what_single_writes_store_in_order(database: Database) -> None:
    log = CallLog(database)
    ids = log.ensure_calls(
        [CallArrival("burst.1", "+74951234567", "Ivan", started_at=T0),
         CallArrival("single.1", "+74951234568", "Olga", started_at=T0)]
    )  # fmt: skip
    assert set(ids) == {"burst.1", "single.1"}
    data = {"flow": "hotline", "node": "menu", "text": 'кавычки " и \\ слэш', "n": [1, None]}
    # Deliberately out of time order: the submission order is what counts.
    steps = [(f"flow:{i}:flow_step", T0 + timedelta(milliseconds=10 - i)) for i in range(1, 8)]
    with log.batch():
        written = log.record_events(
            [TimelineEntry("burst.1", "flow_step", key, at, data) for key, at in steps]
            + [TimelineEntry("nobody.1", "flow_step", "flow:1:flow_step", T0, data)],
            ids,
        )
    assert written == 7  # the unknown call's entry is skipped
    for key, at in steps:
        log.record_event("single.1", "flow_step", key=key, at=at, data=data)
    burst, single = _events(database, "burst.1"), _events(database, "single.1")
    assert burst == single
    assert [key for _, key, _, _ in burst] == [key for key, _ in steps]
    assert burst[0][2] == steps[0][1] and burst[0][2].tzinfo is not None
    assert burst[0][3] == data


def test_a_replayed_burst_adds_nothing_and_ids_are_looked_up_when_not_given(
    database: Database,
) -> None:
    log = CallLog(database)
    log.ensure_calls([CallArrival("replay.1", "+74951234567", None, started_at=T0)])
    entries = [
        TimelineEntry("replay.1", "flow_step", f"flow:{i}:x", T0, {"i": i}) for i in range(3)
    ]
    with log.batch():
        assert log.record_events(entries) == 3  # no ids handed in: looked up
    with log.batch():
        assert log.record_events(entries) == 3  # already there: skipped, not doubled
    assert [data for _, _, _, data in _events(database, "replay.1")] == [
        {"i": 0},
        {"i": 1},
        {"i": 2},
    ]


def test_menu_results_with_ids_handed_in_update_the_call(database: Database) -> None:
    log = CallLog(database)
    ids = log.ensure_calls([CallArrival("menu.1", "+74951234567", None, started_at=T0)])
    with log.batch():
        log.apply_menu_results(
            [MenuResult("menu.1", "1", "water", "plumbing", "ru", T0),
             MenuResult("menu.1", "2", "power", "electric", "ru", T0 + timedelta(seconds=1))],
            ids,
        )  # fmt: skip
    with database.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == "menu.1")).one()
        assert (call.menu_choice, call.queue, call.intent) == ("2", "electric", "power")


def test_arrivals_already_there_keep_their_row_and_id(database: Database) -> None:
    log = CallLog(database)
    first = log.ensure_calls([CallArrival("again.1", "+74951234567", None, started_at=T0)])
    again = log.ensure_calls(
        [CallArrival("again.1", "+74951234567", "Ivan", started_at=T0 - timedelta(seconds=5)),
         CallArrival("again.2", None, None, started_at=T0)]
    )  # fmt: skip
    assert again["again.1"] == first["again.1"] and "again.2" in again
    with database.session() as session:
        assert session.scalars(select(Call.id).where(Call.linkedid == "again.1")).all() == [
            first["again.1"]
        ]
