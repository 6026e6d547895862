"""The callback list on the real databases (SQLite and PostgreSQL): claims under real
concurrency, outcomes and retries, quiet hours, closing, escalation to Redis."""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from redis.asyncio import Redis

from call_router import (
    callback_claims,
    callback_dialing,
    callback_escalation,
    callback_intake,
    callback_list,
    callbacks,
)
from call_router import callback_policy as policy
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.models import Call

T0 = datetime(2026, 1, 15, 8, 0, tzinfo=UTC)  # 11:00 in Moscow, January (frost)
MSK = ZoneInfo("Europe/Moscow")
RULES = callbacks.CallbackRules(
    deadlines={"emergency": 15, "heating": 60, "default": 120},
    frost_months=frozenset({10, 11, 12, 1, 2, 3, 4}),
    quiet=policy.QuietHours.parse("21:00", "09:00", MSK),
    claim_timeout=600,
    max_attempts=3,
    retry_delays=(900, 3600),
)
ROUNDS = 60


def _entry(
    db: Database,
    number: str,
    *,
    reason: str = "abandoned_in_queue",
    queue: str | None = "plumbing",
    intent: str | None = None,
    now: datetime = T0,
) -> int:
    with db.session() as session:
        entry = callback_intake.open_or_attach(
            session,
            caller_number=number,
            reason=reason,
            queue=queue,
            call_id=None,
            now=now,
            intent=intent,
            rules=RULES,
        )
        assert entry is not None
        return entry.id


def _claimer(
    url: str, operator: str, ids: list[int], barrier: mp.synchronize.Barrier, results: mp.Queue
) -> None:  # type: ignore[type-arg]
    db = Database(url)
    for callback_id in ids:
        barrier.wait(timeout=60)  # both processes go for the same entry at the same moment
        try:
            with db.session() as session:
                callback_claims.claim(session, callback_id, operator, T0, timeout=600)
            results.put((callback_id, operator, True))
        except callbacks.CallbackError as exc:
            assert exc.code == "claimed", exc.code
            results.put((callback_id, operator, False))
    db.dispose()


def test_two_processes_claiming_the_same_entries_exactly_one_wins_each(database: Database) -> None:
    ids = [_entry(database, f"+7495200{n:04d}") for n in range(ROUNDS)]
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_claimer, args=(database.url, op, ids, barrier, results))
        for op in ("op_a", "op_b")
    ]
    for proc in procs:
        proc.start()
    outcomes = [results.get(timeout=120) for _ in range(2 * ROUNDS)]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    winners: dict[int, list[str]] = {}
    for callback_id, operator, won in outcomes:
        if won:
            winners.setdefault(callback_id, []).append(operator)
    assert sorted(winners) == ids
    assert all(len(w) == 1 for w in winners.values()), winners
    with database.session() as session:
        for callback_id, (winner,) in winners.items():
            assert callback_list.get_callback(session, callback_id).claimed_by == winner  # type: ignore[union-attr]


def test_a_claim_lapses_and_only_its_holder_may_release_it(database: Database) -> None:
    cid = _entry(database, "+74953000001")
    with database.session() as session:
        callback_claims.claim(session, cid, "op_a", T0, timeout=600)
    with database.session() as session, pytest.raises(callbacks.CallbackError) as err:
        callback_claims.claim(session, cid, "op_b", T0 + timedelta(seconds=599), timeout=600)
    assert err.value.code == "claimed"
    with database.session() as session, pytest.raises(callbacks.CallbackError):
        callback_claims.release(session, cid, T0, operator="op_b")
    with database.session() as session:  # 10 minutes later op_a's claim has lapsed
        entry = callback_claims.claim(
            session, cid, "op_b", T0 + timedelta(seconds=601), timeout=600
        )
        assert entry.claimed_by == "op_b"
    with database.session() as session:
        released = callback_claims.release(
            session, cid, T0 + timedelta(seconds=602), operator="op_b"
        )
        assert released.claimed_by is None
        actions = [h.action for h in callback_list.history(session, cid)]
    assert actions == ["created", "claimed", "claimed", "released"]


def test_no_answer_schedules_a_retry_then_gives_up_after_max_attempts(database: Database) -> None:
    cid = _entry(database, "+74953000002")
    now = T0
    for expected_delay in (900, 3600):
        with database.session() as session:
            callback_claims.claim(session, cid, "op_a", now, timeout=600)
            entry = callback_claims.record_outcome(
                session, cid, policy.Outcome.NO_ANSWER, now, rules=RULES, operator="op_a"
            )
            assert entry.status == "open"
            assert entry.next_attempt_at == now + timedelta(seconds=expected_delay)
            assert entry.claimed_by is None  # back on the list for whoever is free then
        now = entry.next_attempt_at
    with database.session() as session:
        entry = callback_claims.record_outcome(
            session, cid, "busy", now, rules=RULES, operator="op_a"
        )
        assert entry.status == "closed"
        assert entry.tries == 3
        assert entry.note == "unreachable"


def test_a_retry_never_falls_into_quiet_hours(database: Database) -> None:
    cid = _entry(database, "+74953000003")
    evening = datetime(2026, 1, 15, 20, 45, tzinfo=MSK)  # +15 min is 21:00, quiet
    with database.session() as session:
        entry = callback_claims.record_outcome(session, cid, "no_answer", evening, rules=RULES)
        assert entry.next_attempt_at == datetime(2026, 1, 16, 9, 0, tzinfo=MSK)
    with database.session() as session:
        asked = datetime(2026, 1, 16, 7, 0, tzinfo=MSK)
        entry = callback_claims.record_outcome(
            session, cid, "retry", evening, rules=RULES, retry_at=asked
        )
        assert entry.next_attempt_at == datetime(2026, 1, 16, 9, 0, tzinfo=MSK)


def test_a_retry_time_at_the_calendars_end_is_refused_clearly(database: Database) -> None:
    # Found by playing attacker (2026-12-06): year 9999 overflowed when the quiet hours moved
    # it on (an OverflowError: a 500 on the API, a traceback on the CLI).
    cid = _entry(database, "+74953000005")
    evening = datetime(2026, 1, 15, 20, 45, tzinfo=MSK)
    for asked in (datetime(9999, 12, 31, 23, 59, tzinfo=MSK), datetime(1, 1, 1, tzinfo=UTC)):
        with database.session() as session, pytest.raises(callbacks.CallbackError) as refused:
            callback_claims.record_outcome(
                session, cid, "retry", evening, rules=RULES, retry_at=asked
            )
        assert refused.value.code == "bad_time" and "between the years" in str(refused.value)


def test_dialling_is_refused_at_night_before_the_retry_and_while_a_call_runs(
    database: Database,
) -> None:
    cid = _entry(database, "+74953000004")
    night = datetime(2026, 1, 15, 23, 30, tzinfo=MSK)
    with database.session() as session:
        callback_claims.claim(session, cid, "op_a", night, timeout=600)
    with database.session() as session:
        # Started in the morning: a call from long ago that never ended would count as stale.
        call = Call(
            linkedid="t-1",
            caller_number="+74953000004",
            started_at=datetime(2026, 1, 16, 9, 5, tzinfo=MSK),
        )
        session.add(call)
        session.flush()
        call_id = call.id
    with database.session() as session, pytest.raises(callbacks.CallbackError) as err:
        callback_dialing.start_call(session, cid, "op_a", night, call_id=call_id, rules=RULES)
    assert err.value.code == "quiet_hours"
    morning = datetime(2026, 1, 16, 9, 5, tzinfo=MSK)
    with database.session() as session:
        callback_claims.claim(session, cid, "op_a", morning, timeout=600)
        callback_dialing.start_call(session, cid, "op_a", morning, call_id=call_id, rules=RULES)
    with database.session() as session, pytest.raises(callbacks.CallbackError) as err:
        callback_dialing.start_call(session, cid, "op_a", morning, call_id=call_id, rules=RULES)
    assert err.value.code == "call_in_progress"
    with database.session() as session, pytest.raises(callbacks.CallbackError) as err:
        callback_dialing.start_call(session, cid, "op_b", morning, call_id=call_id, rules=RULES)
    assert err.value.code == "not_claimed"


def test_priority_order_repeat_attach_and_auto_close(database: Database) -> None:
    old = _entry(database, "+74953000010", now=T0)
    repeat = _entry(database, "8 495 300-00-11", now=T0 + timedelta(minutes=5))
    heating = _entry(
        database, "+74953000012", queue="heating", intent="heating", now=T0 + timedelta(minutes=10)
    )
    # The same resident again, spelled differently: attached, now a repeat caller.
    assert _entry(database, "+7 (495) 300-00-11", now=T0 + timedelta(minutes=20)) == repeat
    with database.session() as session:
        order = [
            cb.id
            for cb in callback_list.list_callbacks(session, "open", now=T0 + timedelta(hours=1))
        ]
        assert order == [heating, repeat, old]  # frost: heating first; then the repeat caller
        assert callback_list.get_callback(session, repeat).attempts == 2  # type: ignore[union-attr]
        assert (
            callback_intake.close_for_number(session, "+74953000010", "reached_operator", T0) == 1
        )
        assert callback_list.get_callback(session, old).status == "closed"  # type: ignore[union-attr]
        assert [h.action for h in callback_list.history(session, old)] == ["created", "closed"]


async def test_overdue_entries_escalate_once_to_redis(
    database: Database, redis_client: Redis, redis_prefix: str
) -> None:
    cid = _entry(database, "+74953000020", queue="lift", intent="lift_stuck")
    live = LiveState(redis_client, redis_prefix)
    pubsub = redis_client.pubsub()
    await pubsub.subscribe(live.channel)
    await pubsub.get_message(timeout=1)  # the subscribe confirmation
    assert await callback_escalation.escalate_overdue(database, live, now=T0) == []
    alerts = await callback_escalation.escalate_overdue(
        database, live, now=T0 + timedelta(minutes=16)
    )
    assert [a["callback_id"] for a in alerts] == [cid]
    message = None
    for _ in range(20):
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0.5)
        if message:
            break
    assert message is not None
    payload = json.loads(message["data"])
    assert payload["type"] == "callback_overdue" and payload["callback_id"] == cid
    assert payload["category"] == "emergency"
    # Alerted once: the next pass sends nothing.
    later = T0 + timedelta(minutes=30)
    assert await callback_escalation.escalate_overdue(database, live, now=later) == []
    await pubsub.aclose()
    await asyncio.sleep(0)


def test_sources_menu_hangup_after_a_choice_and_after_hours_but_not_the_greeting(
    database: Database,
) -> None:
    log = CallLog(database)
    # Hung up on the greeting: asked for nothing, no entry.
    log.ensure_call("S1", caller_number="+74953000030", caller_name=None, started_at=T0)
    log.call_ended("S1", cause="Normal Clearing", at=T0 + timedelta(seconds=4))
    # Chose "lift" (stuck people, reported by the speech menu) and hung up before the queue.
    log.ensure_call("S2", caller_number="+74953000031", caller_name=None, started_at=T0)
    log.record_menu_result(
        "S2",
        choice="4",
        intent="lift_stuck",
        queue="lift",
        language="ru",
        at=T0 + timedelta(seconds=6),
    )
    log.call_ended("S2", cause="Normal Clearing", at=T0 + timedelta(seconds=8))
    # Called at night: the after-hours message, no voicemail.
    log.ensure_call("S3", caller_number="+74953000032", caller_name=None, started_at=T0)
    log.record_event("S3", "after_hours", key="after_hours", at=T0 + timedelta(seconds=2))
    log.call_ended("S3", cause="Normal Clearing", at=T0 + timedelta(seconds=9))
    with database.session() as session:
        entries = {
            cb.caller_number: cb for cb in callback_list.list_callbacks(session, "open", now=T0)
        }
        assert set(entries) == {"+74953000031", "+74953000032"}
        stuck = entries["+74953000031"]
        assert (stuck.reason, stuck.intent, stuck.category) == (
            "abandoned_in_menu",
            "lift_stuck",
            "emergency",
        )
        assert stuck.priority == policy.Priority.EMERGENCY
        assert entries["+74953000032"].reason == "after_hours"
        # Emergencies first.
        assert next(iter(entries.values())).id == stuck.id


def test_cli_lists_claims_and_shows_history(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hotline.cli_callbacks import app

    cid = _entry(database, "+74953000040", now=datetime.now(UTC))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", database.url)
    # 10:00 in Moscow is outside the quiet hours (21:00-09:00 hotline time).
    monkeypatch.setenv("HOTLINE_TIMEZONE", "Europe/Moscow")
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = [r for r in json.loads(listed.output) if r["id"] == cid]
    # The fields `hotline callbacks list --json` always had are still there.
    assert {"id", "caller_number", "status", "reason", "attempts", "created_at"} <= set(row)
    assert runner.invoke(app, ["claim", str(cid), "--operator", "op_a"]).exit_code == 0
    taken = runner.invoke(app, ["claim", str(cid), "--operator", "op_b"])
    assert taken.exit_code == 1 and "claimed" in taken.output
    retry = runner.invoke(
        app,
        [
            "outcome",
            str(cid),
            "retry",
            "--at",
            "2030-01-02T10:00:00+03:00",
            "--note",
            "after 10",
            "--operator",
            "op_a",
            "--json",
        ],
    )
    assert retry.exit_code == 0, retry.output
    assert json.loads(retry.output)["next_attempt_at"].startswith("2030-01-02T07:00:00")
    shown = json.loads(runner.invoke(app, ["show", str(cid), "--json"]).output)
    assert [h["action"] for h in shown["history"]] == ["created", "claimed", "outcome"]
    assert shown["history"][-1]["note"] == "after 10"


def test_api_lists_in_calling_order_and_counts_anonymous_misses(database: Database) -> None:
    from fastapi.testclient import TestClient

    from call_router.settings import Settings
    from dashboard.main import create_app
    from tests.conftest import bearer_headers

    now = datetime.now(UTC)
    plain = _entry(database, "+74953000050", now=now - timedelta(minutes=30))
    flood = _entry(database, "+74953000051", intent="flooding", now=now - timedelta(minutes=5))
    log = CallLog(database)
    log.ensure_call("A1", caller_number="anonymous", caller_name=None, started_at=now)
    log.queue_joined("A1", queue="lift", key="join", at=now)
    log.call_ended("A1", cause="Normal Clearing", at=now + timedelta(seconds=1))
    settings = Settings(database_url=database.url, timezone="Europe/Moscow")
    app = create_app(settings, database, zone=MSK)
    with TestClient(app, headers=bearer_headers(database)) as client:
        rows = client.get("/api/callbacks").json()
        assert [r["id"] for r in rows] == [flood, plain]  # the flood first, though newer
        assert rows[0]["category"] == "emergency" and rows[0]["due_at"].endswith("Z")
        assert {"caller_number", "status", "attempts", "created_at"} <= set(rows[0])
        counts = client.get("/api/callbacks/summary").json()
        assert counts["open"] == 2 and counts["emergency"] == 1
        assert counts["overdue"] == 0 and counts["anonymous_missed"] == 1
        missing = client.post("/api/callbacks/999999/claim", json={"operator": "op_a"})
        assert missing.status_code == 404 and missing.json()["detail"]["code"] == "not_found"
        bad = client.post(f"/api/callbacks/{plain}/outcome", json={"outcome": "maybe"})
        assert bad.status_code == 422


def test_a_call_back_that_never_reported_its_end_stops_blocking_after_a_while(
    database: Database,
) -> None:
    cid = _entry(database, "+74953000005")
    morning = datetime(2026, 1, 16, 9, 5, tzinfo=MSK)
    with database.session() as session:
        call = Call(linkedid="t-2", caller_number="+74953000005", started_at=morning)
        session.add(call)
        session.flush()
        call_id = call.id
        callback_claims.claim(session, cid, "op_a", morning, timeout=3600)
        callback_dialing.start_call(session, cid, "op_a", morning, call_id=call_id, rules=RULES)
    soon = morning + timedelta(minutes=5)
    with database.session() as session, pytest.raises(callbacks.CallbackError) as err:
        callback_dialing.start_call(session, cid, "op_a", soon, call_id=call_id, rules=RULES)
    assert err.value.code == "call_in_progress"
    later = morning + callback_dialing.ACTIVE_CALL_STALE + timedelta(seconds=1)
    with database.session() as session:
        entry = callback_dialing.start_call(
            session, cid, "op_a", later, call_id=call_id, rules=RULES
        )
        assert entry.active_call_id == call_id
