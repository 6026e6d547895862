"""The FastAGI writer's burst statements (CallLog.ensure_calls / record_events /
apply_menu_results) on SQLite and PostgreSQL: what they store is what the one-at-a-time ORM
path stores, in submission order, idempotently, with call ids handed in or looked up."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import event, func, select

from call_router import tenants
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


# --- the arrivals' one statement (call_router/call_arrivals_sql.py) ---------------------------

_ROW = (
    "linkedid",
    "caller_number",
    "caller_number_raw",
    "caller_name",
    "channel",
    "dialed_number",
    "started_at",
    "node",
    "direction",
    "tenant_id",
)


def _row(db: Database, linkedid: str) -> dict[str, object]:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == linkedid)).one()
        return {name: getattr(call, name) for name in _ROW}


def _statements(db: Database) -> list[str]:
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    return seen


def _with_numbers(db: Database) -> int:
    """A tenant with the number 4951110000, the centre's number 4952220000: the tenant's id."""
    with db.session() as session:
        tenant = tenants.add_tenant(session, "Dom Service", slug="dom")
        tenants.add_number(session, "+7 (495) 111-00-00", "dom")
        tenants.add_number(session, "+74952220000", None)
        return tenant.id


def test_a_burst_of_new_arrivals_is_one_statement(database: Database) -> None:
    tenant_id = _with_numbers(database)
    log = CallLog(database)
    seen = _statements(database)
    ids = log.ensure_calls(
        [CallArrival("one.1", "+74951234567", "Ivan", "PJSIP/a-1", "+74951110000", T0),
         CallArrival("one.2", "84951234568", "Olga", "PJSIP/a-2", "+74952220000", T0),
         CallArrival("one.3", None, None, None, "999", T0)]
    )  # fmt: skip
    inserts = [s for s in seen if s.lstrip().upper().startswith(("INSERT", "SELECT", "UPDATE"))]
    assert len(inserts) == 1, inserts
    assert ids["one.1"] < ids["one.2"] < ids["one.3"]  # created in the burst's order
    assert [_row(database, lid)["tenant_id"] for lid in ("one.1", "one.2", "one.3")] == [
        tenant_id,
        None,
        None,
    ]


def test_a_burst_stores_the_rows_ensure_call_stores(database: Database) -> None:
    _with_numbers(database)
    log = CallLog(database, node="n1")
    arrivals = [
        ("+74951234567", 'Иван "Ваня"\x07', "PJSIP/trunk-0001", "+74951110000"),
        ("84951234568", None, "PJSIP/trunk-0002", "+74952220000"),
        (None, "Olga", None, None),
        ("  ", "x" * 300, "c" * 300, "+7" + "9" * 40),
    ]
    log.ensure_calls([CallArrival(f"burst.{n}", *a, started_at=T0) for n, a in enumerate(arrivals)])
    for n, (number, name, channel, dialled) in enumerate(arrivals):
        log.ensure_call(
            f"single.{n}",
            caller_number=number,
            caller_name=name,
            channel=channel,
            dialed_number=dialled,
            started_at=T0,
        )
        burst, single = _row(database, f"burst.{n}"), _row(database, f"single.{n}")
        assert {**burst, "linkedid": None} == {**single, "linkedid": None}
        assert burst["started_at"] == T0 and burst["node"] == "n1"


def test_arrivals_already_there_are_merged_as_ensure_call_merges(database: Database) -> None:
    tenant_id = _with_numbers(database)
    log = CallLog(database)
    # The router got there first: no caller ID, no channel, no dialled number.
    first = log.ensure_call("there.1", caller_number=None, caller_name=None, started_at=T0)
    ids = log.ensure_calls(
        [CallArrival("there.1", "+74951234567", "Ivan", "PJSIP/a-1", "+74951110000",
                     T0 + timedelta(seconds=1)),
         CallArrival("there.1", "+74951234567", "Ivan", "PJSIP/a-1", "+74951110000",
                     T0 - timedelta(seconds=2)),
         CallArrival("new.1", "+74951234568", None, started_at=T0)]
    )  # fmt: skip
    assert ids["there.1"] == first and set(ids) == {"there.1", "new.1"}
    row = _row(database, "there.1")
    assert row["caller_number"] == "+74951234567" and row["caller_name"] == "Ivan"
    assert row["channel"] == "PJSIP/a-1" and row["tenant_id"] == tenant_id
    assert row["started_at"] == T0 - timedelta(seconds=2)  # the earliest of the burst's
    # Replayed: nothing new, the same ids.
    assert log.ensure_calls([CallArrival("new.1", "+74951234568", None, started_at=T0)]) == {
        "new.1": ids["new.1"]
    }
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(Call)) == 2


_MENU_COLUMNS = ("menu_choice", "intent", "language", "menu_ended_at", "queue")


def _menu_columns(db: Database, linkedid: str) -> tuple[object, ...]:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == linkedid)).one()
        return tuple(getattr(call, name) for name in _MENU_COLUMNS)


def test_menu_results_in_a_burst_set_what_single_writes_set(database: Database) -> None:
    log = CallLog(database)
    passes = [
        ("1", "water", "plumbing", "ru", T0),
        ("2", "power", "electric", "en", T0 + timedelta(seconds=1)),
        (None, None, "coordinator", None, T0 + timedelta(seconds=2)),
    ]
    ids = log.ensure_calls(
        [CallArrival(f"{kind}.{n}", None, None, started_at=T0)
         for kind in ("burst", "single") for n in range(3)]
    )  # fmt: skip
    # Call 2 joined a queue before its second pass: the queue path owns its queue column.
    log.queue_joined("burst.2", queue="plumbing", key="join:1", at=T0)
    log.queue_joined("single.2", queue="plumbing", key="join:1", at=T0)
    burst = [MenuResult(f"burst.{n}", *p) for n in range(3) for p in passes[: n + 1]]
    with log.batch():
        log.apply_menu_results(burst + [MenuResult("late.1", "1", "water", "plumbing", "ru")], ids)
    for n in range(3):
        for choice, intent, queue, language, at in passes[: n + 1]:
            log.record_menu_result(
                f"single.{n}", choice=choice, intent=intent, queue=queue, language=language, at=at
            )
        assert _menu_columns(database, f"burst.{n}") == _menu_columns(database, f"single.{n}")
    assert _menu_columns(database, "burst.2")[4] == "plumbing"
    assert _menu_columns(database, "late.1")[:3] == ("1", "water", "ru")  # row created first
