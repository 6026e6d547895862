"""Report figures per quarter hour, rolled up once a slot is closed (call_router/report_models.py).

A long report reads the rolled-up rows of its closed slots and adds the live GROUP BY
(call_router.call_sums) of the rest: today's open slots, partial slots at the ends, any slot not
(or no longer) rolled up. Rolling up runs exactly the live GROUP BYs, grouped by slot as well,
so both paths give the same figures (tests/integration/test_report_rollups.py).

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
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import (
    BigInteger,
    Connection,
    Engine,
    Float,
    Select,
    String,
    and_,
    cast,
    delete,
    false,
    func,
    insert,
    literal_column,
    null,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from call_router import board_reads, call_sums, reports, tenant_wall
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
from call_router.service_figures import OperatorTotals, QueueTotals

log = structlog.get_logger(__name__)

# Serialises roll-ups on PostgreSQL (pg_advisory_xact_lock key; "report" in ASCII).
ADVISORY_KEY = 0x7265706F7274
# A roll-up waits this long for a lock, then gives up (the report adds that part up live).
LOCK_TIMEOUT = "20s"
BARRIER_TIMEOUT = "2s"
# A report rolls up at most this many missing slots (two days): what closed since the last
# visit; a first visit to a long range adds the older ones up live (about its old cost).
LAZY_SLOTS = 2 * 96
# More gaps than this in the rolled-up slots of a range: add the whole range up live instead.
MAX_LIVE_RANGES = 4
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


@dataclass
class Figures:
    """What a report adds up over a range, before call_router.reports folds it."""

    slots: dict[int, int] = field(default_factory=dict)
    intents: dict[str | None, int] = field(default_factory=dict)
    queues: list[QueueTotals] = field(default_factory=list)
    operators: dict[str, OperatorTotals] = field(default_factory=dict)
    covered: set[int] = field(default_factory=set)

    def plus(self, other: Figures) -> Figures:
        return Figures(
            slots=reports.add_counts(self.slots, other.slots),
            intents=reports.add_counts(self.intents, other.intents),
            queues=reports.add_queue_totals(self.queues, other.queues),
            operators=reports.add_operator_totals(self.operators, other.operators),
            covered=self.covered | other.covered,
        )


def _engine(session: Session) -> Engine:
    bind = session.get_bind()
    return bind.engine if isinstance(bind, Connection) else bind


def closed_end(session: Session, now: datetime, threshold: float) -> int:
    """The first slot not closed at `now` (see call_router.reports.closed_before)."""
    stale = reports.stale_age(threshold, board_reads.STALE_CALL)
    oldest_open = session.scalar(
        select(func.min(Call.started_at)).where(
            Call.ended_at.is_(None), Call.started_at >= now - stale
        )
    )
    return reports.closed_before(now, oldest_open)


def _valid(first: int, end: int, threshold: float, span: int = SPAN_SLOT) -> Any:
    return and_(
        ReportSlot.span == span,
        ReportSlot.slot >= first,
        ReportSlot.slot < end,
        ReportSlot.rolled_at.is_not(None),
        ReportSlot.sl_threshold == threshold,
    )


def covered_slots(session: Session, first: int, end: int, threshold: float) -> set[int]:
    """Slots of [first, end) rolled up with this service-level threshold."""
    rows = session.scalars(select(ReportSlot.slot).where(_valid(first, end, threshold)))
    return {int(slot) for slot in rows}


# --- rolling up -------------------------------------------------------------------------


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
            select(ReportSlot.slot).where(_valid(first, end, threshold, SPAN_DAY))
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
        select(ReportSlot.slot).where(_valid(day, end, threshold)).with_for_update()
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
        select(func.coalesce(func.sum(ReportSlot.calls), 0)).where(_valid(day, end, threshold))
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


# --- reading ----------------------------------------------------------------------------

_KINDS = ("slot", "day", "intent", "queue", "operator")
_NUMBERS = 9


def _part(kind: str, slot: Any, key: Any, *numbers: Any) -> Select[*tuple[Any, ...]]:
    padded = [cast(n, Float) for n in numbers] + [cast(null(), Float)] * (_NUMBERS - len(numbers))
    return select(
        literal_column(str(_KINDS.index(kind))).label("kind"),
        cast(slot, BigInteger).label("slot"),
        cast(key, String).label("key"),
        *(n.label(f"n{i}") for i, n in enumerate(padded)),
    )


def read_rolled(session: Session, first: int, end: int, threshold: float) -> Figures:
    """The rolled-up figures of the slots [first, end) and the slots they cover.

    Whole UTC days inside the range are read from their day rows, other slots from theirs. A
    first look at the marks says which rows to read (so the indexes on (span, slot) are used);
    the figures are then read in one statement, one snapshot, that reads a row only if its
    span is still rolled up. `covered` is exactly the slots whose figures were read: a slot
    invalidated, or rolled up, between the two is left to the live part.
    """
    marks = session.execute(
        select(ReportSlot.span, ReportSlot.slot).where(
            or_(_valid(first, end, threshold), _valid(first, end, threshold, SPAN_DAY))
        )
    ).all()
    day_hint = sorted(slot for span, slot in marks if span == SPAN_DAY and slot + SPAN_DAY <= end)
    in_days = set(day_hint)
    slot_hint = [
        slot for span, slot in marks if span == SPAN_SLOT and slot - slot % SPAN_DAY not in in_days
    ]
    slot_runs = reports.runs(slot_hint, max_length=end - first)
    # The hints bound both sides of each semi-join: good plans even before ANALYZE.
    valid_days = select(ReportSlot.slot).where(
        _valid(first, end, threshold, SPAN_DAY), ReportSlot.slot.in_(day_hint or [-1])
    )

    def in_runs(column: Any) -> Any:
        return or_(false(), *(and_(column >= a, column < b) for a, b in slot_runs))

    valid_slots = select(ReportSlot.slot).where(
        _valid(first, end, threshold), in_runs(ReportSlot.slot)
    )

    def chosen(table: Any, *columns: Any) -> Any:
        """The table's rows of the hinted days and slots that are still rolled up."""
        parts = []
        if day_hint:
            parts.append(
                select(*columns).where(
                    table.span == SPAN_DAY,
                    table.slot.in_(day_hint),
                    table.slot.in_(valid_days.scalar_subquery()),
                )
            )
        if slot_runs:
            parts.append(
                select(*columns).where(
                    table.span == SPAN_SLOT,
                    in_runs(table.slot),
                    table.slot.in_(valid_slots.scalar_subquery()),
                )
            )
        return union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()

    figures = Figures()
    if not marks:
        return figures
    i, q, o = ReportSlotIntent, ReportSlotQueue, ReportSlotOperator
    intents = chosen(i, i.intent, i.calls)
    queues = chosen(q, *(getattr(q, name) for name in QUEUE_COLUMNS))
    operators = chosen(o, *(getattr(o, name) for name in OPERATOR_COLUMNS))
    stmt = union_all(
        _part("slot", ReportSlot.slot, null(), ReportSlot.calls).where(
            _valid(first, end, threshold)
        ),
        _part("day", ReportSlot.slot, null()).where(
            _valid(first, end, threshold, SPAN_DAY), ReportSlot.slot.in_(day_hint or [-1])
        ),
        _part("intent", null(), intents.c.intent, func.sum(intents.c.calls)).group_by(
            intents.c.intent
        ),
        _part(
            "queue", null(), queues.c.queue, *(func.sum(queues.c[n]) for n in QUEUE_SUMS)
        ).group_by(queues.c.queue),
        _part(
            "operator",
            null(),
            operators.c.operator,
            *(func.sum(operators.c[n]) for n in OPERATOR_COLUMNS[1:]),
        ).group_by(operators.c.operator),
    )
    calls: dict[int, int] = {}
    days_read: set[int] = set()
    queue_totals = []
    for kind, slot, key, *n in session.execute(stmt):
        name = _KINDS[int(kind)]
        if name == "slot":
            calls[int(slot)] = int(n[0] or 0)
        elif name == "day":
            days_read.add(int(slot))
        elif name == "intent":
            figures.intents[key] = int(n[0])
        elif name == "queue":
            queue_totals.append(call_sums.queue_totals_of([key, *n]))
        else:
            figures.operators[str(key)] = OperatorTotals(str(key), int(n[0]), n[1], int(n[2]))
    hinted = set(slot_hint)
    figures.covered = {
        slot for slot in calls if slot in hinted or slot - slot % SPAN_DAY in days_read
    }
    # Like the live GROUP BY, a slot without calls has no entry.
    figures.slots = {slot: calls[slot] for slot in figures.covered if calls[slot]}
    figures.queues = sorted(queue_totals, key=lambda t: t.queue)
    return figures


def read_live(
    session: Session, since: datetime, until: datetime, *, threshold: float, now: datetime
) -> Figures:
    """The live GROUP BYs over [since, until)."""
    return Figures(
        slots=call_sums.calls_per_slot(session, since, until),
        intents=call_sums.calls_per_intent(session, since, until),
        queues=call_sums.queue_totals(session, since, until, threshold=threshold, now=now),
        operators=call_sums.operator_calls(session, since, until),
    )


def report_figures(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    threshold: float,
    now: datetime,
    roll_up_missing: bool = True,
) -> Figures:
    """Calls per slot and intent, queue and operator totals of [since, until): rolled-up rows
    for the closed slots, the live GROUP BY for the rest.

    `roll_up_missing`: first roll up the closed slots of the range that are not, the latest
    LAZY_SLOTS of them (a long range's first visit is then about as fast as the live path;
    `hotline reports rollup` does them all ahead).
    """
    if not tenant_wall.scope_of(session).everything:
        # The rolled-up rows add up every tenant's calls; a walled session (a tenant's report,
        # `?tenant=`) adds up its own calls, whose ORM queries the tenant wall filters.
        return read_live(session, since, until, threshold=threshold, now=now)
    closed = closed_end(session, now, threshold)
    window = reports.plan_range(since, until, closed).rolled
    if window is None:
        return read_live(session, since, until, threshold=threshold, now=now)
    if roll_up_missing:
        try:
            roll_up(_engine(session), *window, threshold=threshold, now=now, limit=LAZY_SLOTS)
        except DBAPIError as exc:  # a busy or read-only database: the live path still answers
            log.warning("report roll-up failed", error=str(exc))
    rolled = read_rolled(session, *window, threshold)
    plan = reports.plan_range(since, until, closed, rolled.covered)
    if len(plan.live) > MAX_LIVE_RANGES:
        return read_live(session, since, until, threshold=threshold, now=now)
    total = rolled
    for start, stop in plan.live:
        total = total.plus(read_live(session, start, stop, threshold=threshold, now=now))
    return total


def service_level_slots(
    session: Session, since: datetime, until: datetime, *, threshold: float, now: datetime
) -> tuple[dict[int, int], dict[int, int]]:
    """(answered within the threshold, decided) per UTC slot of [since, until): the service
    level over time (QueueTotals' within / decided). Rolled-up slot rows where report_figures
    left them (call it first), the live GROUP BY for the rest, as report_figures does."""
    within: dict[int, int] = {}
    decided: dict[int, int] = {}

    def add(slot: int, inside: int, counted: int) -> None:
        within[slot] = within.get(slot, 0) + inside
        decided[slot] = decided.get(slot, 0) + counted

    def live(start: datetime, stop: datetime) -> None:
        stmt = call_sums.queue_totals_stmt(start, stop, threshold=threshold, now=now, by_slot=True)
        for row in session.execute(stmt):
            add(int(row[0]), int(row[5]), int(row[6]))

    closed = closed_end(session, now, threshold)
    window = reports.plan_range(since, until, closed).rolled
    if not tenant_wall.scope_of(session).everything or window is None:
        live(since, until)
        return within, decided
    valid = select(ReportSlot.slot).where(_valid(*window, threshold))
    covered = set(session.scalars(valid))
    rolled = (
        select(
            ReportSlotQueue.slot,
            func.sum(ReportSlotQueue.within),
            func.sum(ReportSlotQueue.decided),
        )
        .where(
            ReportSlotQueue.span == SPAN_SLOT,
            ReportSlotQueue.slot >= window[0],
            ReportSlotQueue.slot < window[1],
            ReportSlotQueue.slot.in_(valid.scalar_subquery()),
        )
        .group_by(ReportSlotQueue.slot)
    )
    for slot, inside, counted in session.execute(rolled):
        add(int(slot), int(inside), int(counted))
    for start, stop in reports.plan_range(since, until, closed, covered).live:
        live(start, stop)
    return within, decided
