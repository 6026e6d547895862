"""The "is it fixed?" call's store on real SQLite and PostgreSQL (migration 0023): a done
request is due, one try is taken, the answer reopens it with the score kept; and the
migration goes down and up again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import inspect

from call_router import callback_policy as policy
from call_router import request_feedback as feedback
from call_router import request_lifecycle as life
from call_router import service_requests as store
from call_router.callbacks import CallbackRules
from call_router.db import Database, alembic_config
from call_router.dial_plan import DialPlan
from call_router.request_feedback_dialer import take_due

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
