"""Rolled-up quarter hours (call_router/report_rollups.py, read by report_rollup_reads.py)
against the live GROUP BY, on SQLite and PostgreSQL (migration 0009's trigger included): the
same figures for a seeded log with calls across slot boundaries, abandoned, still waiting,
talking, and lost by the router; and again after late changes to calls in slots already rolled
up."""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import astuple
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select, text, update

from call_router import report_rollup_reads, report_rollups, reports
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.models import Call
from call_router.outcomes import ABANDONED_IN_QUEUE
from call_router.report_models import SPAN_DAY, SPAN_SLOT, ReportSlot, ReportSlotIntent
from call_router.report_rollup_reads import Figures
from call_router.settings import Settings
from dashboard.routes.reports import build_report
from tests.conftest import run_hotline

NOW = datetime(2026, 11, 24, 10, 7, 35, tzinfo=UTC)
SINCE = datetime(2026, 11, 21, 21, 0, tzinfo=UTC)  # local midnight in Moscow
UNTIL = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)
THRESHOLD = 20.0
QUEUES = ("plumbing", "heating", "electricity")
INTENTS = ("water", "heating", "power", None)
OPERATORS = ("Anna", "Boris", "Vera")


def _call(rng: random.Random, n: int, started: datetime, shape: str) -> Call:
    """One call of a given shape; times in whole and fractional seconds."""
    call = Call(
        linkedid=f"roll-{n}",
        caller_number=f"+7495{n:07d}",
        started_at=started,
        intent=rng.choice(INTENTS),
    )
    if shape == "menu":
        call.ended_at = started + timedelta(seconds=rng.uniform(5, 40))
        call.outcome = "menu_hangup"
        return call
    call.queue = rng.choice(QUEUES)
    joined = started + timedelta(seconds=rng.uniform(3, 30))
    call.queue_joined_at = joined
    if shape in ("answered", "talking", "at_threshold", "past_threshold"):
        wait = {"at_threshold": THRESHOLD, "past_threshold": THRESHOLD + 0.05}.get(shape)
        answered = joined + timedelta(seconds=wait or rng.uniform(1, 60))
        call.answered_at = answered
        call.operator = rng.choice(OPERATORS)
        if shape != "talking":
            call.ended_at = answered + timedelta(seconds=rng.uniform(20, 900))
            call.outcome = "answered"
            if shape == "answered" and rng.random() < 0.5:  # logged at the hang-up
                call.wait_seconds = round((answered - joined).total_seconds())
                call.talk_seconds = round((call.ended_at - answered).total_seconds())
    elif shape == "abandoned":
        call.ended_at = joined + timedelta(seconds=rng.uniform(1, 120))
        call.outcome = ABANDONED_IN_QUEUE
        if rng.random() < 0.5:
            call.wait_seconds = round((call.ended_at - joined).total_seconds())
    elif shape == "timeout":
        call.ended_at = joined + timedelta(seconds=rng.uniform(60, 300))
        call.outcome = "queue_timeout"
    # "waiting": still in the queue, no end
    return call


def seed(db: Database) -> list[Call]:
    rng = random.Random(20261124)
    calls = []
    start = SINCE - timedelta(hours=2)  # some before the range
    for n in range(400):
        started = start + timedelta(seconds=rng.uniform(0, (NOW - start).total_seconds() - 1800))
        shape = rng.choice(("menu", "answered", "answered", "abandoned", "timeout"))
        calls.append(_call(rng, n, started, shape))
    slot_end = reports.slot_start(reports.slot_of(NOW) - 20)
    extra = [
        # exactly on slot boundaries, and ending long after in another slot
        (slot_end, "answered"),
        (slot_end - timedelta(microseconds=1), "answered"),
        (slot_end - timedelta(seconds=2), "abandoned"),
        # answered exactly at the service-level threshold (within) and just after it
        (slot_end - timedelta(hours=1), "at_threshold"),
        (slot_end - timedelta(hours=1), "past_threshold"),
        # lost by the router 10 hours ago: never ended (its slot closes anyway)
        (NOW - timedelta(hours=10), "waiting"),
        (NOW - timedelta(hours=9), "talking"),
        # in progress now, and one 2 hours ago that keeps its slot (and all later) open
        (NOW - timedelta(seconds=40), "waiting"),
        (NOW - timedelta(minutes=4), "talking"),
        (NOW - timedelta(hours=2, minutes=3), "talking"),
        # after the range's end
        (UNTIL + timedelta(minutes=1), "menu"),
    ]
    for n, (started, shape) in enumerate(extra, start=1000):
        calls.append(_call(rng, n, started, shape))
    with db.session() as session:
        session.add_all(calls)
    return calls


def norm(figures: Figures) -> tuple[Any, ...]:
    """Figures comparable across paths: ints exact, sums of seconds to the microsecond (the
    order of a float sum differs between one pass and sums of per-slot sums)."""

    def rounded(values: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(round(v, 6) if isinstance(v, float) else v for v in values)

    return (
        figures.slots,
        figures.intents,
        [rounded(astuple(t)) for t in figures.queues],
        {name: rounded(astuple(t)) for name, t in figures.operators.items()},
    )


def live(db: Database, since: datetime = SINCE, threshold: float = THRESHOLD) -> Figures:
    with db.session() as session:
        return report_rollup_reads.read_live(session, since, UNTIL, threshold=threshold, now=NOW)


def rolled(
    db: Database, since: datetime = SINCE, threshold: float = THRESHOLD, **kw: Any
) -> Figures:
    with db.session() as session:
        return report_rollup_reads.report_figures(
            session, since, UNTIL, threshold=threshold, now=NOW, **kw
        )


def covered(db: Database, threshold: float = THRESHOLD) -> set[int]:
    with db.session() as session:
        return report_rollups.covered_slots(session, 0, 2**40, threshold)


def slot(at: datetime) -> int:
    return reports.slot_of(at)


def rolled_days(db: Database) -> set[datetime]:
    """UTC days whose 96 slots were added up into day rows."""
    with db.session() as session:
        firsts = session.scalars(select(ReportSlot.slot).where(ReportSlot.span == SPAN_DAY))
        return {reports.slot_start(first) for first in firsts}


DAY_22, DAY_23 = datetime(2026, 11, 22, tzinfo=UTC), datetime(2026, 11, 23, tzinfo=UTC)


def test_rolled_up_figures_equal_the_live_ones(database: Database) -> None:
    seed(database)
    expected = live(database)
    assert sum(expected.slots.values()) > 300 and expected.queues and expected.operators

    # The open call of 2 h ago keeps its slot and every later one live; a visit rolls up the
    # latest closed ones, the next visit the older ones.
    open_slot = slot(NOW - timedelta(hours=2, minutes=3))
    first = rolled(database)
    assert covered(database) == set(range(open_slot - report_rollup_reads.LAZY_SLOTS, open_slot))
    assert first.covered == covered(database)
    assert norm(first) == norm(expected)
    second = rolled(database)
    assert covered(database) == second.covered == set(range(slot(SINCE), open_slot))
    assert norm(second) == norm(expected)
    # The two whole UTC days inside the range are read from their day rows.
    assert rolled_days(database) == {DAY_22, DAY_23}
    # A day whose slots are all rolled up is added up again if its own row went missing.
    with database.session() as session:
        session.execute(
            delete(ReportSlot).where(ReportSlot.span == SPAN_DAY, ReportSlot.slot == slot(DAY_22))
        )
    assert norm(rolled(database)) == norm(expected)
    assert rolled_days(database) == {DAY_22, DAY_23}

    # A second report reads the rolled-up rows as they are.
    with database.session() as session:
        rows = session.scalar(select(func.count()).select_from(ReportSlotIntent))
    assert norm(rolled(database, roll_up_missing=False)) == norm(expected)
    with database.session() as session:
        assert session.scalar(select(func.count()).select_from(ReportSlotIntent)) == rows

    # A range starting inside a slot: the partial slot is added live.
    since = SINCE + timedelta(minutes=7, seconds=3)
    assert norm(rolled(database, since)) == norm(live(database, since))


async def test_the_routers_background_job_rolls_up_the_recent_closed_slots(
    database: Database,
) -> None:
    seed(database)
    # What closed in the look-back (the open call of 2 h ago keeps its slot and later ones live).
    open_slot = slot(NOW - timedelta(hours=2, minutes=3))
    wanted = set(range(slot(NOW - report_rollups.ROUTER_LOOKBACK), open_slot))
    job = asyncio.create_task(
        report_rollups.run_periodically(
            database.engine, threshold=THRESHOLD, interval=3600, clock=lambda: NOW
        )
    )
    try:
        # The pass commits as it goes: wait for all of it, not for its first slots.
        for _ in range(300):
            if covered(database) >= wanted:
                break
            await asyncio.sleep(0.1)
    finally:
        job.cancel()
        await asyncio.gather(job, return_exceptions=True)
    assert covered(database) == wanted
    assert norm(rolled(database, roll_up_missing=False)) == norm(live(database))


def test_a_bounded_roll_up_leaves_the_older_slots_live(database: Database) -> None:
    seed(database)
    with database.session() as session:
        closed = report_rollups.closed_end(session, NOW, THRESHOLD)
    rolled_now = report_rollups.roll_up(
        database.engine, slot(SINCE), closed, threshold=THRESHOLD, now=NOW, limit=10
    )
    assert rolled_now == 10 and covered(database) == set(range(closed - 10, closed))
    figures = rolled(database, roll_up_missing=False)
    assert figures.covered == set(range(closed - 10, closed))
    assert norm(figures) == norm(live(database))


def test_the_report_page_figures_come_from_rolled_up_slots(database: Database) -> None:
    seed(database)
    settings = Settings(service_level_seconds=int(THRESHOLD))
    zone = ZoneInfo("Europe/Moscow")
    with database.session() as session:
        first = build_report(
            session, settings, zone, date(2026, 11, 22), date(2026, 11, 24), "hour", now=NOW
        )
    assert covered(database)
    with database.session() as session:
        again = build_report(
            session, settings, zone, date(2026, 11, 22), date(2026, 11, 24), "hour", now=NOW
        )
    assert again == first
    expected = live(database)
    assert first.total == sum(expected.slots.values())
    assert first.answered == sum(t.answered for t in expected.queues)


def test_late_changes_to_rolled_up_calls_are_seen(database: Database) -> None:
    calls = seed(database)
    rolled(database)
    done = sorted(
        (
            c
            for c in calls
            if c.ended_at is not None
            and c.queue
            and SINCE < c.started_at < NOW - timedelta(hours=3)
        ),
        key=lambda c: c.id,
    )
    late_answer, moved, deleted = done[0], done[1], done[2]
    assert {slot(c.started_at) for c in (late_answer, moved, deleted)} <= covered(database)

    with database.session() as session:
        # A reconciled answer and operator on a call that had ended without one.
        session.execute(
            update(Call)
            .where(Call.id == late_answer.id)
            .values(answered_at=late_answer.queue_joined_at, operator="Vera", outcome="answered")
        )
        session.execute(delete(Call).where(Call.id == deleted.id))
    # The other writer knew an earlier start: the call moves to another slot.
    earlier = moved.started_at - timedelta(minutes=50)
    CallLog(database).ensure_call(
        moved.linkedid, caller_number=None, caller_name=None, started_at=earlier
    )
    # A call the router missed, logged afterwards with its real (old) start.
    missed_at = SINCE + timedelta(hours=5, minutes=1)
    missed = CallLog(database).ensure_call(
        "roll-missed", caller_number="+74951112233", caller_name=None, started_at=missed_at
    )
    with database.session() as session:
        session.execute(
            update(Call).where(Call.id == missed).values(ended_at=missed_at + timedelta(seconds=9))
        )

    touched = {slot(c.started_at) for c in (late_answer, moved, deleted)} | {
        slot(earlier),
        slot(missed_at),
    }
    assert not touched & covered(database)
    assert norm(rolled(database, roll_up_missing=False)) == norm(live(database))
    assert norm(rolled(database)) == norm(live(database))
    assert touched <= covered(database)
    assert rolled_days(database) == {DAY_22, DAY_23}


def test_emptying_the_call_log_drops_its_rolled_up_slots(database: Database) -> None:
    calls = seed(database)
    rolled(database)
    assert covered(database) and rolled_days(database)
    with database.session() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            session.execute(text("TRUNCATE calls CASCADE"))  # no row triggers: its own one
        else:
            session.execute(delete(Call))
    left = covered(database)
    assert not left & {slot(c.started_at) for c in calls} and not rolled_days(database)
    assert not left if postgres else left  # row by row: slots that had no call stay (empty)
    assert norm(rolled(database, roll_up_missing=False)) == norm(Figures()) == norm(live(database))


def test_another_threshold_rolls_up_again(database: Database) -> None:
    seed(database)
    rolled(database)
    assert not covered(database, threshold=45.0)
    assert norm(rolled(database, threshold=45.0)) == norm(live(database, threshold=45.0))
    assert covered(database, threshold=45.0) and not covered(database)


def test_a_change_during_a_roll_up_leaves_its_slot_unrolled(database: Database) -> None:
    calls = seed(database)
    victim = next(
        c
        for c in calls
        if c.ended_at is not None and SINCE < c.started_at < NOW - timedelta(hours=3)
    )
    victim_slot = slot(victim.started_at)
    first, end = slot(SINCE), victim_slot + 4
    with database.session() as session:
        report_rollups._claim(session, list(range(first, end)), first, end, THRESHOLD, token=7)
    # Written between the claim and the fill: the trigger drops the pending row, and another
    # roll-up claims the slot afresh - this one must not mark it with figures from before.
    with database.session() as session:
        session.execute(update(Call).where(Call.id == victim.id).values(operator="Late"))
    with database.session() as session:
        report_rollups._claim(session, [victim_slot], victim_slot, victim_slot + 1, THRESHOLD, 8)
    with database.session() as session:
        marked = report_rollups._fill(session, first, end, THRESHOLD, NOW, token=7)
    assert marked == end - first - 1
    assert victim_slot not in covered(database)
    with database.session() as session:
        pending = session.get(ReportSlot, (SPAN_SLOT, victim_slot))
        assert pending is not None and pending.rolled_at is None and pending.fill_token == 8
    assert norm(rolled(database, roll_up_missing=False)) == norm(live(database))


def rollup_json(since: str) -> Any:
    output = run_hotline("reports", "rollup", "--since", since, "--json").stdout
    return json.loads(output.strip().splitlines()[-1])  # the log goes to stdout too


def test_cli_rolls_up_closed_quarter_hours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    db = Database(f"sqlite:///{tmp_path / 'hotline.db'}")
    db.upgrade()
    now = datetime.now(UTC)
    start = now - timedelta(days=2)
    with db.session() as session:
        session.add_all(
            Call(linkedid=f"cli-{n}", started_at=start + timedelta(minutes=7 * n),
                 ended_at=start + timedelta(minutes=7 * n, seconds=30), intent="water")
            for n in range(100)
        )  # fmt: skip
    try:
        since = (now - timedelta(days=3)).date().isoformat()
        result = rollup_json(since)
        assert result["rolled_up"] > 0 and result["covered"] == result["rolled_up"]
        with db.session() as session:
            figures = report_rollup_reads.read_rolled(session, 0, 2**40, 20.0)
        assert sum(figures.slots.values()) == 100
        again = rollup_json(since)
        # Only a quarter hour that closed meanwhile is new; nothing is rolled up twice.
        assert again["covered"] == result["covered"] + again["rolled_up"]
        assert again["rolled_up"] <= 1
    finally:
        db.dispose()
