"""Reading report figures: rolled-up quarter hours where they are, the live GROUP BY elsewhere.

A long report reads the rolled-up rows (call_router/report_rollups.py writes them) of its closed
slots and adds the live GROUP BY (call_router.call_sums) of the rest: today's open slots, partial
slots at the ends, any slot not (or no longer) rolled up. Both paths give the same figures
(tests/integration/test_report_rollups.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
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
    false,
    func,
    literal_column,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from call_router import call_sums, reports, tenant_wall
from call_router.report_models import (
    SPAN_DAY,
    SPAN_SLOT,
    ReportSlot,
    ReportSlotIntent,
    ReportSlotOperator,
    ReportSlotQueue,
)
from call_router.report_rollups import (
    OPERATOR_COLUMNS,
    QUEUE_COLUMNS,
    QUEUE_SUMS,
    closed_end,
    roll_up,
    rolled_marks,
)
from call_router.service_figures import OperatorTotals, QueueTotals

log = structlog.get_logger(__name__)

# A report rolls up at most this many missing slots (two days): what closed since the last
# visit; a first visit to a long range adds the older ones up live (about its old cost).
LAZY_SLOTS = 2 * 96
# More gaps than this in the rolled-up slots of a range: add the whole range up live instead.
MAX_LIVE_RANGES = 4


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
            or_(rolled_marks(first, end, threshold), rolled_marks(first, end, threshold, SPAN_DAY))
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
        rolled_marks(first, end, threshold, SPAN_DAY), ReportSlot.slot.in_(day_hint or [-1])
    )

    def in_runs(column: Any) -> Any:
        return or_(false(), *(and_(column >= a, column < b) for a, b in slot_runs))

    valid_slots = select(ReportSlot.slot).where(
        rolled_marks(first, end, threshold), in_runs(ReportSlot.slot)
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
            rolled_marks(first, end, threshold)
        ),
        _part("day", ReportSlot.slot, null()).where(
            rolled_marks(first, end, threshold, SPAN_DAY), ReportSlot.slot.in_(day_hint or [-1])
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
    valid = select(ReportSlot.slot).where(rolled_marks(*window, threshold))
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
