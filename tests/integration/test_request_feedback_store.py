"""The "is it fixed?" call's store on real SQLite and PostgreSQL (migration 0023): a done
request is due, one try is taken, the answer reopens it with the score kept; and the
migration goes down and up again. Each try is a row of the call log (feedback_calls.py): an
outbound `feedback` call to the resident with their answer, counted apart from callers and
never a callback entry."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from alembic import command
from sqlalchemy import inspect, select

from call_router import abandoned, call_sums, feedback_calls
from call_router import callback_policy as policy
from call_router import request_feedback as feedback
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.call_log import CallLog
from call_router.callbacks import CallbackRules
from call_router.db import Database, alembic_config
from call_router.dial_plan import DialPlan
from call_router.models import DIRECTION_FEEDBACK, Call, Callback
from call_router.request_feedback_dialer import place, take_due
from call_router.settings import Settings

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # noon in Moscow
RULES = CallbackRules(
    deadlines={},
    frost_months=frozenset(),
    quiet=policy.QuietHours.parse("21:00", "09:00", UTC),
    claim_timeout=600,
    max_attempts=3,
    retry_delays=(900,),
    country="RU",
    dial_plan=DialPlan.national("RU"),
)
FEEDBACK_COLUMNS = {"feedback_due_at", "feedback_attempts", "feedback_score", "feedback_at"}


def _done(db: Database) -> str:
    with db.session() as session:
        created = store.create_request(
            session,
            store.NewRequest(
                category="lift", street="Mira", house="3", caller_number="+79161230099"
            ),
            categories=life.load_categories(),
            actor="op",
            now=T0 - timedelta(hours=2),
        )
        number = created.request.number
        for state in (life.ASSIGNED, life.IN_PROGRESS, life.DONE):
            store.change_state(session, number, state, actor="crew", now=T0 - timedelta(hours=1))
        return number


def test_a_done_request_is_called_once_and_the_answer_reopens_it(database: Database) -> None:
    number = _done(database)
    (attempt,) = take_due(database, RULES, T0)
    assert (attempt.number, attempt.phone, attempt.attempt) == (number, "+79161230099", 1)
    assert take_due(database, RULES, T0) == []  # the next try waits for its delay
    with database.session() as session:
        feedback.record_answer(session, number, feedback.NOT_SOLVED, now=T0)
    with database.session() as session:
        request = store.get_request(session, number)
        assert request.state == life.NEW and request.open_key is not None
        assert (request.feedback_score, request.feedback_due_at) == (2, None)
        assert [e.action for e in request.events][-2:] == ["feedback_call", "status"]
        last = request.events[-1]
        assert (last.from_state, last.to_state, last.actor) == (life.DONE, life.NEW, feedback.ACTOR)
    # Reopened: no more calls, whatever the clock says.
    assert take_due(database, RULES, T0 + timedelta(days=1)) == []


def _row(db: Database, linkedid: str | None) -> tuple[Call, list[tuple[str, dict[str, Any]]]]:
    with db.session() as session:
        call = session.scalars(select(Call).where(Call.linkedid == linkedid)).one()
        events = [(e.kind, dict(e.data)) for e in call.events]
        session.expunge(call)
        return call, events


def _counted_apart(db: Database) -> None:
    """Not a caller (reports, abandoned calls), not a callback entry; its own direction."""
    hour = (T0, T0 + timedelta(hours=1))
    with db.session() as session:
        assert call_sums.calls_per_direction(session, *hour) == {DIRECTION_FEEDBACK: 1}
        assert call_sums.calls_per_slot(session, *hour) == {}
        assert abandoned.abandoned_calls(session, *hour) == []
        assert session.scalars(select(Callback)).all() == []


def test_each_try_is_an_outbound_feedback_call_in_the_call_log(database: Database) -> None:
    number = _done(database)
    with database.session() as session:
        tenant_id = store.get_request(session, number).tenant_id
    (attempt,) = take_due(database, RULES, T0)
    assert feedback_calls.is_feedback_linkedid(attempt.linkedid)
    call, events = _row(database, attempt.linkedid)
    assert (call.direction, call.caller_number, call.tenant_id) == (
        DIRECTION_FEEDBACK, "+79161230099", tenant_id,
    )  # fmt: skip
    assert (call.started_at, call.ended_at, call.operator) == (T0, None, None)
    assert events == [("feedback_call", {"request": number, "attempt": 1, "direction": "outbound"})]
    assert attempt.linkedid is not None
    with database.session() as session:
        feedback_calls.answered(session, attempt.linkedid, T0 + timedelta(seconds=10))
    with database.session() as session:
        feedback.record_answer(
            session, number, feedback.NOT_SOLVED, now=T0 + timedelta(seconds=20),
            linkedid=attempt.linkedid,
        )  # fmt: skip
    # The router's Hangup ends it: settled as the answer, no callback entry.
    CallLog(database).call_ended(attempt.linkedid, cause="16", at=T0 + timedelta(seconds=25))
    call, events = _row(database, attempt.linkedid)
    assert (call.outcome, call.talk_seconds, call.hangup_by) == ("feedback_not_solved", 15, None)
    assert call.ended_at == T0 + timedelta(seconds=25)
    answer = next(data for kind, data in events if kind == "feedback_answer")
    assert (answer["answer"], answer["request"], answer["key"]) == ("not_solved", number, "2")
    _counted_apart(database)


class _Unanswered:
    """The router's AMI link, as far as the dialer uses it: the resident never answers."""

    async def connect(self) -> str:
        return "127.0.0.1"

    async def originate(self, fields: dict[str, Any], *, timeout: float) -> dict[str, str]:
        assert fields["ChannelId"].startswith(feedback_calls.LINKEDID_PREFIX)
        return {"Event": "OriginateResponse", "Response": "Failure", "Reason": "3"}


def test_a_try_not_answered_ends_its_row_as_no_answer(database: Database, tmp_path: Path) -> None:
    number = _done(database)
    (attempt,) = take_due(database, RULES, T0)
    settings = Settings(state_dir=tmp_path / "state", country_code="RU")
    assert asyncio.run(place(settings, database, _Unanswered(), attempt)) is False  # type: ignore[arg-type]
    call, events = _row(database, attempt.linkedid)
    assert (call.outcome, call.answered_at, call.talk_seconds) == ("feedback_no_answer", None, None)
    assert call.ended_at is not None and call.hangup_cause == "not_answered:3"
    answer = next(data for kind, data in events if kind == "feedback_answer")
    assert (answer["answer"], answer["request"], answer["reason"]) == ("no_answer", number, "3")
    # The router's Hangup of the same channel afterwards changes nothing.
    assert CallLog(database).call_ended(attempt.linkedid, cause="16") is None
    _counted_apart(database)


def _columns(db: Database) -> set[str]:
    return {c["name"] for c in inspect(db.engine).get_columns("service_requests")}


def test_the_migration_goes_down_and_up_keeping_the_requests(empty_url: str) -> None:
    db = Database(empty_url)
    db.upgrade()
    number = _done(db)
    assert _columns(db) >= FEEDBACK_COLUMNS
    command.downgrade(alembic_config(db.url), "0020")
    db.engine.dispose()
    assert not FEEDBACK_COLUMNS & _columns(db)
    command.upgrade(alembic_config(db.url), "head")
    db.engine.dispose()
    with db.session() as session:
        request = store.get_request(session, number)
        assert (request.state, request.feedback_attempts, request.feedback_due_at) == (
            life.DONE,
            0,
            None,
        )
    db.dispose()
