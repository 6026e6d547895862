"""Rolling up report figures per quarter hour once a slot is closed (call_router/report_models.py).

A long report reads the rolled-up rows of its closed slots and adds the live GROUP BY
(call_router.call_sums) of the rest (the reading side: call_router/report_rollup_reads.py).
Rolling up runs exactly the live GROUP BYs, grouped by slot as well, so both paths give the same
figures (tests/integration/test_report_rollups.py).

A slot is rolled up only once closed (call_router.reports.closed_before): ended a quarter hour
ago, and every call that started in it has ended or is older than the stale age - so no figure
of it still depends on `now` (a waiting caller's wait grows). The service level counts calls
answered within the threshold setting: a rolled-up slot keeps the threshold it was rolled up
with, and is rolled up again for another (a one-off pass after the setting changes). Rolling up
happens lazily in the report (at most LAZY_SLOTS per visit, the latest first) and in
`hotline reports rollup`.

How a slot is rolled up without missing a concurrent write (PostgreSQL; SQLite has one writer
at a time, so there each step is trivially atomic):
1. claim: its `report_slots` row is written as pending with this roll-up's token, committed;
   from now on any write to one of its calls deletes that row (the trigger of migration 0009);
2. barrier: `LOCK TABLE calls IN SHARE MODE`, released at once, waits for every transaction
   that wrote calls before the claim (its trigger could not see the row yet) to commit;
3. fill: one transaction per UTC day (serialised by an advisory lock) replaces the figures and
   marks the slots it still holds - a slot changed since the claim has lost its row and stays
   unrolled, its fresh figure rows are dropped; when all 96 slots of the day are rolled up
   (their rows locked), their rows are added up into the day's (span 96).
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    Engine,
    and_,
    delete,
    func,
    insert,
    literal_column,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from call_router import board_reads, call_sums, reports
from call_router.models import Call, utcnow
from call_router.periodic import run_every
from call_router.report_models import (
    SPAN_DAY,
    SPAN_SLOT,
    ReportSlot,
    ReportSlotIntent,
    ReportSlotOperator,
    ReportSlotQueue,
)
from call_router.service_figures import QueueTotals

log = structlog.get_logger(__name__)

# Serialises roll-ups on PostgreSQL (pg_advisory_xact_lock key; "report" in ASCII).
ADVISORY_KEY = 0x7265706F7274
# A roll-up waits this long for a lock, then gives up (the report adds that part up live).
LOCK_TIMEOUT = "20s"
BARRIER_TIMEOUT = "2s"
# The router rolls up what closed in the last days this often, so no report visitor waits.
ROUTER_INTERVAL_SECONDS = 15 * 60
ROUTER_LOOKBACK = timedelta(days=2)

FIGURE_TABLES = (ReportSlotIntent, ReportSlotQueue, ReportSlotOperator)
FIGURE_TABLE_NAMES = tuple(table.__tablename__ for table in FIGURE_TABLES)
# Rolling up this many slots at once (`hotline reports rollup`) refreshes the planner statistics.
ANALYZE_AFTER = 4 * 96
# The figure columns of the tables, in the order of the live statements' columns.
QUEUE_SUMS = [name for name in QueueTotals.__dataclass_fields__ if name != "queue"]
QUEUE_COLUMNS = ["queue", *QUEUE_SUMS]
OPERATOR_COLUMNS = ["operator", "answered", "talk_sum", "talk_count"]


def closed_end(session: Session, now: datetime, threshold: float) -> int:
    """The first slot not closed at `now` (see call_router.reports.closed_before)."""
    stale = reports.stale_age(threshold, board_reads.STALE_CALL)
    oldest_open = session.scalar(
        select(func.min(Call.started_at)).where(
            Call.ended_at.is_(None), Call.started_at >= now - stale
        )
    )
    return reports.closed_before(now, oldest_open)


def rolled_marks(first: int, end: int, threshold: float, span: int = SPAN_SLOT) -> Any:
    """The `report_slots` rows of [first, end) of this span rolled up with this threshold."""
    return and_(
        ReportSlot.span == span,
        ReportSlot.slot >= first,
        ReportSlot.slot < end,
        ReportSlot.rolled_at.is_not(None),
        ReportSlot.sl_threshold == threshold,
    )


def covered_slots(session: Session, first: int, end: int, threshold: float) -> set[int]:
    """Slots of [first, end) rolled up with this service-level threshold."""
    rows = session.scalars(select(ReportSlot.slot).where(rolled_marks(first, end, threshold)))
    return {int(slot) for slot in rows}


def roll_up(
    engine: Engine,
    first: int,
    end: int,
    *,
    threshold: float,
    now: datetime,
    limit: int | None = None,
) -> int:
    """Roll up the closed slots of [first, end) that are not rolled up (with this threshold);
    `limit`: at most that many, the latest first.

    Returns how many slots were rolled up. Idempotent; safe beside writers and other roll-ups.
    """
    with Session(engine) as session, session.begin():
        end = min(end, closed_end(session, now, threshold))
        if first >= end:
            return 0
        missing = sorted(set(range(first, end)) - covered_slots(session, first, end, threshold))
        if limit is not None:
            missing = missing[-limit:] if limit > 0 else []
        whole_days = range(-(-first // SPAN_DAY) * SPAN_DAY, end - SPAN_DAY + 1, SPAN_DAY)
        days_rolled = session.scalars(
            select(ReportSlot.slot).where(rolled_marks(first, end, threshold, SPAN_DAY))
        )
        days_missing = set(whole_days) - set(days_rolled)
    postgres = engine.dialect.name == "postgresql"
    token = secrets.randbits(62)
    if missing:
        with Session(engine) as session, session.begin():
            _claim(session, missing, first, end, threshold, token)
    if missing and postgres:
        with engine.begin() as conn:
            # Writers queue behind the waiting lock: give up soon rather than stall them.
            conn.execute(text(f"SET LOCAL lock_timeout = '{BARRIER_TIMEOUT}'"))
            conn.execute(text("LOCK TABLE calls IN SHARE MODE"))
    rolled = 0
    runs = reports.day_runs(missing, SPAN_DAY)
    # A day whose slots were all rolled up by earlier roll-ups, but not the day itself.
    runs += [(day, day) for day in sorted(days_missing - {a - a % SPAN_DAY for a, _ in runs})]
    for run_first, run_end in runs:
        with Session(engine) as session, session.begin():
            if postgres:
                session.execute(text(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
                session.execute(select(func.pg_advisory_xact_lock(ADVISORY_KEY)))
            if run_first < run_end:
                rolled += _fill(session, run_first, run_end, threshold, now, token)
            else:
                _roll_up_day(session, run_first, threshold, now)
    if rolled:
        log.info("report slots rolled up", slots=rolled, first=first, end=end)
    if postgres and rolled >= ANALYZE_AFTER:
        # Fresh tables: without statistics the planner misjudges the reads by orders of size.
        with engine.connect() as conn:
            conn.execute(text("ANALYZE report_slots, " + ", ".join(FIGURE_TABLE_NAMES)))
            conn.commit()
    return rolled


async def run_periodically(
    engine: Engine,
    *,
    threshold: float,
    interval: float = ROUTER_INTERVAL_SECONDS,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """The router's background job: roll up the recently closed quarter hours, forever."""

    async def one_pass() -> int:
        now = clock()
        first, end = reports.slot_of(now - ROUTER_LOOKBACK), reports.slot_of(now) + 1
        return await asyncio.to_thread(roll_up, engine, first, end, threshold=threshold, now=now)

    await run_every(interval, one_pass, name="report_rollup")


def _claim(
    session: Session, slots: list[int], first: int, end: int, threshold: float, token: int
) -> None:
    # A slot rolled up with another threshold is done again; a pending one is taken over.
    session.execute(
        delete(ReportSlot).where(
            ReportSlot.span == SPAN_SLOT,
            ReportSlot.slot >= first,
            ReportSlot.slot < end,
            ReportSlot.rolled_at.is_not(None),
            or_(ReportSlot.sl_threshold.is_(None), ReportSlot.sl_threshold != threshold),
        )
    )
    dialect = session.get_bind().dialect.name
    upsert: Any = (postgresql if dialect == "postgresql" else sqlite).insert(ReportSlot)
    stmt = upsert.on_conflict_do_update(
        index_elements=[ReportSlot.span, ReportSlot.slot],
        set_={"fill_token": upsert.excluded.fill_token},
        where=ReportSlot.rolled_at.is_(None),
    )
    for start in range(0, len(slots), 1000):
        chunk = slots[start : start + 1000]
        rows = [{"span": SPAN_SLOT, "slot": slot, "fill_token": token} for slot in chunk]
        session.execute(stmt, rows)


def _fill(
    session: Session, first: int, end: int, threshold: float, now: datetime, token: int
) -> int:
    """Roll up the slots [first, end) of one UTC day that this roll-up still holds, then the
    day if all its slots are rolled up. Returns how many slots were marked."""
    since, until = reports.slot_start(first), reports.slot_start(end)
    for table in FIGURE_TABLES:
        session.execute(_in_span(delete(table), table, SPAN_SLOT, first, end))
    session.execute(
        insert(ReportSlotIntent).from_select(
            ["slot", "intent", "calls"], call_sums.calls_per_slot_intent_stmt(since, until)
        )
    )
    session.execute(
        insert(ReportSlotQueue).from_select(
            ["slot", *QUEUE_COLUMNS],
            call_sums.queue_totals_stmt(since, until, threshold=threshold, now=now, by_slot=True),
        )
    )
    session.execute(
        insert(ReportSlotOperator).from_select(
            ["slot", *OPERATOR_COLUMNS], call_sums.operator_calls_stmt(since, until, by_slot=True)
        )
    )
    i = ReportSlotIntent
    calls = (
        select(func.coalesce(func.sum(i.calls), 0))
        .where(i.span == SPAN_SLOT, i.slot == ReportSlot.slot)
        .scalar_subquery()
    )
    marked = set(
        session.scalars(
            update(ReportSlot)
            .where(
                ReportSlot.span == SPAN_SLOT,
                ReportSlot.slot >= first,
                ReportSlot.slot < end,
                ReportSlot.fill_token == token,
            )
            .values(rolled_at=now, sl_threshold=threshold, calls=calls)
            .returning(ReportSlot.slot)
        )
    )
    lost = set(range(first, end)) - marked
    if lost:  # changed since the claim: rows from before the change must not stay
        for table in FIGURE_TABLES:
            session.execute(
                delete(table).where(table.span == SPAN_SLOT, table.slot.in_(sorted(lost)))
            )
    _roll_up_day(session, first - first % SPAN_DAY, threshold, now)
    return len(marked)


def _in_span(stmt: Any, table: Any, span: int, first: int, end: int) -> Any:
    return stmt.where(table.span == span, table.slot >= first, table.slot < end)


def _roll_up_day(session: Session, day: int, threshold: float, now: datetime) -> None:
    """Add the day's 96 slot rows up into its span-96 rows, if every slot is rolled up. The
    slots' rows are locked first: a write to one of them waits, then drops the day too."""
    end = day + SPAN_DAY
    held = session.scalars(
        select(ReportSlot.slot).where(rolled_marks(day, end, threshold)).with_for_update()
    ).all()
    if len(held) < SPAN_DAY:
        return
    session.execute(delete(ReportSlot).where(ReportSlot.span == SPAN_DAY, ReportSlot.slot == day))
    for table, keys in (
        (ReportSlotIntent, ["intent"]),
        (ReportSlotQueue, ["queue"]),
        (ReportSlotOperator, ["operator"]),
    ):
        session.execute(_in_span(delete(table), table, SPAN_DAY, day, end))
        sums = [
            c.name for c in table.__table__.columns if c.name not in ("id", "span", "slot", *keys)
        ]
        key_columns = [getattr(table, k) for k in keys]
        day_rows = _in_span(
            select(
                literal_column(str(SPAN_DAY)),
                literal_column(str(day)),
                *key_columns,
                *(func.sum(getattr(table, name)) for name in sums),
            ),
            table,
            SPAN_SLOT,
            day,
            end,
        ).group_by(*key_columns)
        session.execute(insert(table).from_select(["span", "slot", *keys, *sums], day_rows))
    day_calls = session.scalar(
        select(func.coalesce(func.sum(ReportSlot.calls), 0)).where(
            rolled_marks(day, end, threshold)
        )
    )
    session.add(
        ReportSlot(
            span=SPAN_DAY,
            slot=day,
            calls=int(day_calls or 0),
            rolled_at=now,
            sl_threshold=threshold,
        )
    )
    session.flush()
