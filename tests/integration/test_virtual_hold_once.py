"""Virtual hold dials a resident once per request, on the real databases (SQLite and
PostgreSQL): the router's steps for the automatic call-back (the resident's leg answered, the
call's end) are played through the call log as the AMI listener does, with an explicit clock."""

from __future__ import annotations

from datetime import timedelta

from call_router import (
    callback_claims,
    callback_dialing,
    callback_intake,
    callback_list,
    click_to_call,
    virtual_hold,
)
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import Call, Callback, Operator
from call_router.virtual_hold_dispatch import release_held
from tests.integration.test_callback_dial_plan import _held
from tests.integration.test_callbacks_claim import RULES, T0


def _operators(db: Database, *logins: str) -> None:
    with db.session() as session:
        for login in logins:
            session.add(Operator(name=login, sip_login=login, sip_password="x" * 12))


def _answered(log: CallLog, placed: click_to_call.PlacedCall, at_seconds: int) -> None:
    at = T0 + timedelta(seconds=at_seconds)
    for kind, status in (
        (callback_dialing.EVENT_DIAL_BEGIN, None),
        (callback_dialing.EVENT_DIAL_END, "ANSWER"),
    ):
        assert log.record_event(
            placed.linkedid, kind, key=f"{kind}:resident", at=at, data={"status": status}
        )
    # What the router does on that DialEnd (call_router/router_dialplan_events.py on_callback_dial).
    log.run(lambda session: virtual_hold.close_answered(session, placed.linkedid, at, rules=RULES))


def test_an_answered_automatic_callback_closes_its_entry_and_is_never_dialled_again(
    database: Database,
) -> None:
    _operators(database, "1001", "1002")
    held = _held(database, "+74953000201", placed_minutes_ago=3)
    log = CallLog(database, clock=lambda: T0)
    (placed,) = release_held(database, {"lift": ["1001"]}, rules=RULES, now=T0)
    assert placed.callback_id == held
    _answered(log, placed, at_seconds=20)
    with database.session() as session:
        entry = session.get(Callback, held)
        assert entry is not None
        assert (entry.status, entry.last_outcome, entry.resolved_by) == (
            "closed",
            "reached",
            "1001",
        )
    log.call_ended(placed.linkedid, cause="Normal Clearing", at=T0 + timedelta(minutes=4))
    # Long after the dispatcher's claim would have lapsed, with every operator free: nobody
    # dials the resident again for this request.
    later = T0 + timedelta(seconds=RULES.claim_timeout * 2)
    assert release_held(database, {"lift": ["1001", "1002"]}, rules=RULES, now=later) == []
    with database.session() as session:
        actions = [h.action for h in callback_list.history(session, held)]
    assert actions.count("call_started") == 1, actions


def test_an_operator_s_own_click_to_call_waits_for_their_outcome(database: Database) -> None:
    _operators(database, "1001")
    held = _held(database, "+74953000202", placed_minutes_ago=3)
    with database.session() as session:
        callback_claims.claim(session, held, "1001", T0, timeout=600)
    placed = click_to_call.prepare(database, held, "1001", rules=RULES, now=T0)
    _answered(CallLog(database, clock=lambda: T0), placed, at_seconds=20)
    with database.session() as session:
        entry = session.get(Callback, held)
        assert entry is not None and entry.status == "open"


def test_an_operator_who_misses_the_automatic_callback_gives_the_place_back_at_once(
    database: Database,
) -> None:
    _operators(database, "1001", "1002")
    first = _held(database, "+74953000203", placed_minutes_ago=5)
    second = _held(database, "+74953000204", placed_minutes_ago=1)
    log = CallLog(database, clock=lambda: T0)
    (placed,) = release_held(database, {"lift": ["1001"]}, rules=RULES, now=T0)
    assert placed.callback_id == first
    # 1001's phone never answered: the Originate failed, no resident leg was ever dialled.
    log.call_ended(placed.linkedid, cause="originate_failed:3", at=T0 + timedelta(seconds=30))
    # A minute later 1002 is free: the earlier place is still the first served.
    soon = T0 + timedelta(minutes=1)
    again = release_held(database, {"lift": ["1002"]}, rules=RULES, now=soon)
    assert [p.callback_id for p in again] == [first]
    assert second != first


def test_pressing_1_again_in_a_later_call_keeps_the_earlier_place(database: Database) -> None:
    number = "+74953000205"
    joined = (T0 - timedelta(minutes=6), T0 - timedelta(minutes=1))
    with database.session() as session:
        calls = [
            Call(linkedid=f"vh-keep-{i}", caller_number=number, started_at=at, queue="lift")
            for i, at in enumerate(joined)
        ]
        session.add_all(calls)
        session.flush()
        for call, at in zip(calls, joined, strict=True):
            entry = callback_intake.open_or_attach(
                session,
                caller_number=number,
                reason="virtual_hold",
                queue="lift",
                call_id=call.id,
                now=at + timedelta(seconds=30),
                placed_at=at,
                rules=RULES,
            )
            assert entry is not None
        assert entry.attempts == 2
        assert entry.placed_at == joined[0]


def test_a_callback_orphaned_before_its_originate_gives_the_place_back(database: Database) -> None:
    _operators(database, "1001", "1002")
    held = _held(database, "+74953000206", placed_minutes_ago=4)
    (placed,) = release_held(database, {"lift": ["1001"]}, rules=RULES, now=T0)
    # The router stopped before the Originate: nothing else was written. While it may still
    # be about to dial (another router's pass), the entry stays taken ...
    soon = T0 + virtual_hold.ORPHAN_AFTER / 2
    assert release_held(database, {"lift": ["1002"]}, rules=RULES, now=soon) == []
    # ... then the orphan is settled (nobody was dialled) and the place is served again.
    later = T0 + virtual_hold.ORPHAN_AFTER + timedelta(seconds=1)
    again = release_held(database, {"lift": ["1002"]}, rules=RULES, now=later)
    assert [(p.callback_id, p.operator) for p in again] == [(held, "1002")]
    assert again[0].linkedid != placed.linkedid


def test_a_callback_handed_to_asterisk_is_never_settled_as_an_orphan(database: Database) -> None:
    _operators(database, "1001", "1002")
    _held(database, "+74953000207", placed_minutes_ago=4)
    (placed,) = release_held(database, {"lift": ["1001"]}, rules=RULES, now=T0)
    kind = virtual_hold.EVENT_ORIGINATING
    assert CallLog(database).record_event(placed.linkedid, kind, key=kind, at=T0)
    # Its end was never reported (the router was down when it ended): the resident may have
    # been dialled, so it is never dialled again by itself.
    much_later = T0 + timedelta(hours=1)
    assert release_held(database, {"lift": ["1002"]}, rules=RULES, now=much_later) == []


def test_a_later_abandon_does_not_cancel_the_promise_to_call_back(database: Database) -> None:
    _operators(database, "1001")
    number = "+74953000208"
    held = _held(database, number, placed_minutes_ago=5)
    with database.session() as session:
        call = Call(linkedid="vh-abandon", caller_number=number, started_at=T0, queue="lift")
        session.add(call)
        session.flush()
        entry = callback_intake.open_or_attach(
            session,
            caller_number=number,
            reason="abandoned_in_queue",
            queue="lift",
            call_id=call.id,
            now=T0,
            rules=RULES,
        )
        assert entry is not None and entry.id == held
        assert entry.reason == "virtual_hold"
        attached = callback_list.history(session, held)[-1]
        assert (attached.action, attached.data) == ("attached", {"reason": "abandoned_in_queue"})
    placed = release_held(database, {"lift": ["1001"]}, rules=RULES, now=T0)
    assert [p.callback_id for p in placed] == [held]
