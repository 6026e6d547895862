"""The service-request store against real SQLite and PostgreSQL: duplicates attach, concurrent
changes never lose one (optimistic locking), calls link, SLA deadlines are kept, crews are
matched, Open311 keys are stored hashed, and the tenant wall hides another tenant's requests."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from call_router import (
    open311_keys,
    request_assignment,
    request_crews,
    request_reads,
    tenant_wall,
    tenants,
)
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.db import Database
from call_router.models import Call
from call_router.request_models import Open311Key, RequestEvent, ServiceRequest
from call_router.service_requests import NewRequest, RequestError

CATEGORIES = life.load_categories()
T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)


def _new(**changes: object) -> NewRequest:
    fields: dict[str, object] = {
        "category": "heating",
        "street": "Lenina St",
        "house": "5",
        "flat": "12",
        "description": "No heating in flat 12",
        "caller_number": "+7 (900) 111-22-33",
        "caller_name": "Ivanova",
    }
    fields.update(changes)
    return NewRequest(**fields)  # type: ignore[arg-type]


def _create(db: Database, **changes: object) -> store.Created:
    with db.session() as session:
        return store.create_request(
            session, _new(**changes), categories=CATEGORIES, actor="op1", now=T0
        )


def test_create_sets_number_deadline_and_history(database: Database) -> None:
    created = _create(database)
    assert not created.attached
    with database.session() as session:
        request = store.get_request(session, created.request.number)
        assert request.number == str(1000 + request.id)
        assert request.state == "new"
        assert request.sla_deadline == T0 + timedelta(hours=CATEGORIES["heating"].sla_hours)
        assert request.caller_number == "+79001112233"
        assert [(e.action, e.actor, e.to_state) for e in request.events] == [
            ("created", "op1", "new")
        ]


def test_same_address_and_category_attaches_while_open(database: Database) -> None:
    first = _create(database)
    second = _create(database, street="lenina st.", flat=" 12 ", description="still cold")
    assert second.attached
    assert second.request.number == first.request.number
    other_flat = _create(database, flat="13")
    other_category = _create(database, category="lift")
    assert not other_flat.attached and not other_category.attached
    with database.session() as session:
        request = store.get_request(session, first.request.number)
        assert request.reports == 2
        assert [e.action for e in request.events] == ["created", "reported_again"]
        # Once it is finished, the same problem again is a new request.
        for state in ("cannot_fix",):
            store.change_state(session, request.number, state, actor="disp")
    again = _create(database)
    assert not again.attached
    assert again.request.number != first.request.number


def test_concurrent_reports_of_one_problem_open_one_request(database: Database) -> None:
    results: list[store.Created] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def report() -> None:
        try:
            barrier.wait()
            with database.session() as session:
                results.append(
                    store.create_request(session, _new(), categories=CATEGORIES, actor="op")
                )
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=report) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # SQLite serialises writers; PostgreSQL lets them race to the unique open key.
    if errors:
        assert all("locked" in str(e) or isinstance(e, RequestError) for e in errors), errors
    with database.session() as session:
        rows = session.scalars(select(ServiceRequest)).all()
        assert len(rows) == 1
        assert rows[0].reports == len(results), errors


def test_a_stale_change_is_refused_not_lost(database: Database) -> None:
    number = _create(database).request.number
    # Two dispatchers read the request at version 1 ...
    first = database._sessions()
    second = database._sessions()
    try:
        a = store.get_request(first, number)
        b = store.get_request(second, number)
        assert a.version == b.version == 1
        a.state = "cannot_fix"
        first.commit()
        # ... the second one's change, made on what it read, must not overwrite the first.
        b.state = "not_our_responsibility"
        with pytest.raises(RequestError) as err:
            store._flush(second)
        assert err.value.code == "conflict"
        second.rollback()
    finally:
        first.close()
        second.close()
    with database.session() as session:
        request = store.get_request(session, number)
        assert request.state == "cannot_fix"
        # The API's check: a change based on an old version is refused too.
        with pytest.raises(RequestError) as err:
            store.change_state(session, number, "closed", actor="x", expected_version=1)
        assert err.value.code == "conflict"


def test_full_lifecycle_with_crew_and_reopen(database: Database) -> None:
    number = _create(database, district="North").request.number
    with database.session() as session:
        lifts = request_crews.add_crew(
            session, "Lift crew", categories=["lift"], districts=[], known_categories=CATEGORIES
        )
        heat = request_crews.add_crew(
            session,
            "Heating North",
            categories=["heating"],
            districts=["north"],
            known_categories=CATEGORIES,
        )
        with pytest.raises(RequestError) as err:
            request_assignment.assign(session, number, lifts.id, actor="disp")
        assert err.value.code == "crew_mismatch"
        request_assignment.assign(session, number, heat.id, actor="disp", note="urgent")
        for state in ("on_the_way", "in_progress", "waiting_for_parts", "in_progress", "done"):
            store.change_state(session, number, state, actor="crew1")
        with pytest.raises(RequestError):
            store.change_state(session, number, "on_the_way", actor="crew1")
        request = store.change_state(session, number, "new", actor="resident", note="not fixed")
        assert request.closed_at is None and request.crew_id is None
        assert request.open_key is not None
        history = [(e.action, e.from_state, e.to_state) for e in request.events]
        assert history[1] == ("assigned", "new", "assigned")
        assert history[-1] == ("status", "done", "new")


def test_calls_link_and_the_menu_hook(database: Database) -> None:
    with database.session() as session:
        call = Call(linkedid=uuid.uuid4().hex, caller_number="+79001112233", started_at=T0)
        later = Call(linkedid=uuid.uuid4().hex, caller_number="+79001112233", started_at=T0)
        session.add_all([call, later])
        session.flush()
        ids = (call.id, later.id)
        created = store.create_request(
            session, _new(), categories=CATEGORIES, actor="op", call_id=ids[0], now=T0
        )
        number = created.request.number
        store.link_call(session, number, ids[1], actor="op")
        store.link_call(session, number, ids[1], actor="op")  # idempotent
        with pytest.raises(RequestError):
            store.link_call(session, number, 999999, actor="op")
    with database.session() as session:
        request = store.get_request(session, number)
        assert sorted(link.call_id for link in request.calls) == sorted(ids)
        mine = request_reads.open_requests_for_caller(session, "+7 900 111 22 33")
        assert [r.number for r in mine] == [number]
        spoken = request_reads.spoken_status(mine[0], CATEGORIES)
        assert spoken.startswith(f"Your request {number} about no heating")
        assert request_reads.open_requests_for_caller(session, "+70000000000") == []


def test_bad_input_is_refused_with_a_reason(database: Database) -> None:
    with database.session() as session:
        for changes, code in (
            ({"category": "nope"}, "unknown_category"),
            ({"street": "  "}, "invalid"),
            ({"description": "x" * 4001}, "too_long"),
            ({"lat": 91.0}, "invalid"),
            ({"priority": "urgent!!"}, "priority"),
        ):
            with pytest.raises(RequestError) as err:
                store.create_request(session, _new(**changes), categories=CATEGORIES, actor="op")
            assert err.value.code == code, changes
        # NUL and escape characters are dropped, not stored (PostgreSQL refuses NUL).
        created = store.create_request(
            session, _new(description="cold\x00\x1b[31m"), categories=CATEGORIES, actor="op"
        )
        assert created.request.description == "cold[31m"


def test_open311_keys_are_stored_hashed_and_revocable(database: Database) -> None:
    with database.session() as session:
        plain, row = open311_keys.create_key(session, "city portal")
        assert plain.startswith(open311_keys.KEY_PREFIX)
        assert plain not in row.key_hash
        assert open311_keys.key_for(session, plain) is not None
        assert open311_keys.key_for(session, plain + "x") is None
        open311_keys.revoke_key(session, "city portal")
        assert open311_keys.key_for(session, plain) is None
        stored = session.scalars(select(Open311Key.key_hash)).all()
        assert plain not in stored


def test_the_tenant_wall_hides_other_tenants_requests(database: Database) -> None:
    with database.session() as session:
        a = tenants.add_tenant(session, "Company A").id
        b = tenants.add_tenant(session, "Company B").id
        ra = store.create_request(session, _new(), categories=CATEGORIES, actor="op", tenant_id=a)
        rb = store.create_request(session, _new(), categories=CATEGORIES, actor="op", tenant_id=b)
        # One address, two tenants: two requests (a duplicate is within one tenant only).
        assert not rb.attached
        numbers = (ra.request.number, rb.request.number)
    with database.session() as session:
        tenant_wall.set_scope(session, tenant_wall.Scope(tenant=a))
        assert [
            r.number for r in request_reads.list_requests(session, request_reads.RequestFilter())
        ] == [numbers[0]]
        with pytest.raises(RequestError) as err:
            store.get_request(session, numbers[1])
        assert err.value.code == "not_found"
        with pytest.raises(RequestError):
            store.change_state(session, numbers[1], "closed", actor="a-supervisor")
        events = session.scalars(select(RequestEvent)).all()
        assert {e.tenant_id for e in events} == {a}


def test_migration_downgrade_removes_the_tables(tmp_path: Path) -> None:
    """On a private SQLite file: the session's PostgreSQL database is shared by other tests."""
    from alembic import command

    from call_router.db import alembic_config

    db = Database(f"sqlite:///{tmp_path / 'down.db'}")
    db.upgrade()
    command.downgrade(alembic_config(db.url), "0015")
    with db.engine.connect() as conn:
        names = {
            row[0]
            for row in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))
        }
    assert not names & {"service_requests", "crews", "request_events", "request_calls"}
    command.upgrade(alembic_config(db.url), "head")
    db.dispose()
