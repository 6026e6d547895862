"""Agent state, dispositions and virtual hold on real SQLite and PostgreSQL (migration 0003)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from call_router.agent_models import AgentStateLog
from call_router.agent_store import (
    desired_agents,
    record_login,
    record_logout,
    record_pause,
    record_queues,
)
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.dispositions import DispositionError, DispositionInput, save_disposition
from call_router.models import Call, Callback
from call_router.operators import (
    PENALTY_MAX,
    RosterError,
    add_operator,
    list_operators,
    parse_skills,
)
from call_router.virtual_hold import request_callback

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
CATEGORIES = ("consultation", "other")


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_desired_state_defaults_to_all_skills_and_follows_login_pause_logout(
    database: Database,
) -> None:
    with database.session() as s:
        login = add_operator(s, "Anna", parse_skills("plumbing,coordinator:5")).sip_login
    with database.session() as s:
        (anna,), managed = desired_agents(s)
        assert dict(anna.queues) == {"plumbing": 0, "coordinator": 5} and not anna.paused
        assert managed == {f"PJSIP/{login}"}
        record_login(s, login, ["plumbing"], "cli", at(1))
    with database.session() as s:
        with pytest.raises(RosterError, match="reason"):
            record_pause(s, login, True, "  ", "api", at(2))
        assert record_pause(s, login, True, "lunch", "api", at(2)) is True
        assert record_pause(s, login, True, "lunch", "api", at(3)) is False  # no change
    with database.session() as s:
        (anna,), _ = desired_agents(s)
        assert dict(anna.queues) == {"plumbing": 0}
        assert (anna.paused, anna.reason) == (True, "lunch")
        with pytest.raises(RosterError, match="no skill"):
            record_login(s, login, ["lift"], "cli", at(4))
    with database.session() as s:
        record_logout(s, login, "cli", at(5))
    with database.session() as s:
        assert desired_agents(s)[0] == []
        log = [(r.action, r.reason, r.source) for r in s.scalars(select(AgentStateLog))]
        assert log == [
            ("login", None, "cli"),
            ("pause", "lunch", "api"),
            ("logout", None, "cli"),
        ]
        with pytest.raises(RosterError, match="logged out"):
            record_pause(s, login, True, "lunch", "api", at(6))


def test_a_supervisors_queue_and_penalty_change_is_kept_in_the_roster(
    database: Database,
) -> None:
    with database.session() as s:
        login = add_operator(s, "Boris", parse_skills("plumbing,coordinator:5")).sip_login
        record_login(s, login, ["plumbing"], "cli", at(1))
    with database.session() as s:
        stored = record_queues(s, login, "plumbing:2,heating:9", "api", at(2))
        assert [(k.queue, k.penalty) for k in stored] == [("plumbing", 2), ("heating", 9)]
    with database.session() as s:
        (boris,) = list_operators(s)
        assert {(k.queue, k.penalty) for k in boris.skills} == {("plumbing", 2), ("heating", 9)}
        # Logged in to plumbing only: still plumbing only, at the new penalty.
        (desired,), _ = desired_agents(s)
        assert dict(desired.queues) == {"plumbing": 2}
        (entry,) = s.scalars(select(AgentStateLog).where(AgentStateLog.action == "queues"))
        assert entry.data == {
            "before": {"coordinator": 5, "plumbing": 0},
            "after": {"plumbing": 2, "heating": 9},
        }
    # The roster's own rules, one definition (operators.PENALTY_MAX); nothing changes.
    for spec, message in (
        (f"plumbing:{PENALTY_MAX + 1}", "penalty"),
        ("plumbing:-1", "penalty"),
        ("sauna", "unknown queue"),
        ("", "at least one queue"),
        ("plumbing,plumbing:3", "twice"),
    ):
        with database.session() as s, pytest.raises(RosterError, match=message):
            record_queues(s, login, spec, "api", at(3))
    with database.session() as s:
        (boris,) = list_operators(s)
        assert {(k.queue, k.penalty) for k in boris.skills} == {("plumbing", 2), ("heating", 9)}
        with pytest.raises(RosterError, match="no operator"):
            record_queues(s, "nobody", "plumbing", "api", at(4))


def test_disposition_is_one_per_call_and_part_of_the_call(database: Database) -> None:
    log = CallLog(database)
    call_id = log.ensure_call("1.1", caller_number="+74951234567", caller_name=None)
    with database.session() as s:
        first = DispositionInput("consultation", "  told about the schedule ", False, "Anna")
        save_disposition(s, call_id, first, categories=CATEGORIES, now=at(0))
    with database.session() as s:
        second = DispositionInput("Other", None, True)
        save_disposition(s, call_id, second, categories=CATEGORIES, now=at(9))
    with database.session() as s:
        call = s.get(Call, call_id)
        assert call is not None
        d = call.disposition  # type: ignore[attr-defined]
        assert (d.category, d.note, d.callout_created) == ("other", None, True)
        assert d.created_at == at(0) and d.updated_at == at(9)
        with pytest.raises(DispositionError) as bad:
            save_disposition(
                s, call_id, DispositionInput("x", None, False), categories=CATEGORIES, now=at(1)
            )
        assert bad.value.code == "bad_category"
        with pytest.raises(DispositionError) as missing:
            save_disposition(s, 424242, first, categories=CATEGORIES, now=at(1))
        assert missing.value.code == "call_not_found"


def test_virtual_hold_opens_one_callback_keeping_the_place_and_sets_the_outcome(
    database: Database,
) -> None:
    log = CallLog(database)
    log.ensure_call("2.1", caller_number="+74951230000", caller_name=None, started_at=at(0))
    log.queue_joined("2.1", queue="heating", key="join", at=at(10))
    first = request_callback(database, "2.1", queue="heating", at=at(70))
    again = request_callback(database, "2.1", queue="heating", at=at(71))  # replayed event
    assert first is not None and again is not None
    assert first.callback_id is not None and first.callback_id == again.callback_id
    assert request_callback(database, "no-such-call", queue=None, at=at(1)) is None
    log.call_ended("2.1", cause="Normal Clearing", at=at(75))
    with database.session() as s:
        (entry,) = s.scalars(select(Callback)).all()
        assert (entry.reason, entry.queue, entry.attempts) == ("virtual_hold", "heating", 1)
        assert entry.placed_at == at(10)
        call = s.scalars(select(Call).where(Call.linkedid == "2.1")).one()
        assert call.outcome == "callback_requested"
        assert call.hangup_by == "caller"
