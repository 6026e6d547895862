"""Report sums: the database adds up calls per quarter hour, queue, operator, intent, direction.

Python only folds the small results (call_router.reports); the figures' definitions are
call_router.service_figures'. Nothing here writes.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Select, and_, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from call_router import service_figures
from call_router.models import DIRECTION_INBOUND, Call, Operator
from call_router.reports import SLOT_SECONDS
from call_router.service_figures import OperatorTotals, QueueTotals
from call_router.sql_functions import epoch_seconds, greatest, least, utc_at

# A pause that began this long before a report's range and never ended is not looked for:
# it keeps the window query on the (small) agent state log bounded.
PAUSE_LOOKBACK = timedelta(days=1)


class epoch_slot(FunctionElement[int]):  # noqa: N801
    """The UTC quarter hour a naive-UTC timestamp falls in (seconds since 1970 // 900)."""

    type = Integer()
    name = "epoch_slot"
    inherit_cache = True


@compiles(epoch_slot)
def _slot_postgresql(element: epoch_slot, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {x}) / {SLOT_SECONDS}) AS BIGINT)"


@compiles(epoch_slot, "sqlite")
def _slot_sqlite(element: epoch_slot, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    return f"(CAST(strftime('%s', {x}) AS INTEGER) / {SLOT_SECONDS})"


def _in_range(since: datetime, until: datetime) -> Any:
    return and_(Call.started_at >= since, Call.started_at < until)


def _callers(since: datetime, until: datetime) -> Any:
    """Residents' calls (inbound) started in [since, until): what the calls and intents charts
    count. An operator's callback or an internal call is not a caller; calls_per_direction
    counts those."""
    return and_(_in_range(since, until), Call.direction == DIRECTION_INBOUND)


def calls_per_slot(session: Session, since: datetime, until: datetime) -> dict[int, int]:
    """Callers (inbound calls) started in [since, until) per UTC quarter hour (SLOT_SECONDS)."""
    slot = epoch_slot(Call.started_at).label("slot")
    stmt = select(slot, func.count()).where(_callers(since, until)).group_by(slot)
    return {int(s): int(n) for s, n in session.execute(stmt)}


def calls_per_intent(session: Session, since: datetime, until: datetime) -> dict[str | None, int]:
    """Callers (inbound calls) started in [since, until) per intent (None: none recognised)."""
    stmt = select(Call.intent, func.count()).where(_callers(since, until)).group_by(Call.intent)
    return {intent: int(n) for intent, n in session.execute(stmt)}


def calls_per_slot_intent_stmt(since: datetime, until: datetime) -> Select[*tuple[Any, ...]]:
    """(slot, intent, calls): calls_per_slot and calls_per_intent in one, for the rollup."""
    slot = epoch_slot(Call.started_at).label("slot")
    return (
        select(slot, Call.intent, func.count())
        .where(_callers(since, until))
        .group_by(slot, Call.intent)
    )


def queue_totals_stmt(
    since: datetime,
    until: datetime,
    *,
    threshold: float,
    now: datetime,
    by_slot: bool = False,
    key: Any = None,
) -> Select[*tuple[Any, ...]]:
    """([slot,] queue, offered, answered, abandoned, within, decided, wait_sum, wait_count,
    talk_sum, talk_count) per queue (and per slot: the rollup), as QueueTotals' fields.
    `key`: group by that column instead of the queue (the roll-up by tenant)."""
    group = Call.queue if key is None else key
    keys = [epoch_slot(Call.started_at).label("slot")] if by_slot else []
    return (
        select(*keys, group, *service_figures.sql_queue_sums(threshold=threshold, now=now))
        .where(_callers(since, until), Call.queue.is_not(None), Call.queue_joined_at.is_not(None))
        .group_by(*keys, group)
    )


def queue_totals_of(row: Any) -> QueueTotals:
    """QueueTotals from a row of (queue, offered, ... talk_count)."""
    return QueueTotals(
        queue=str(row[0]),
        offered=int(row[1]),
        answered=int(row[2]),
        abandoned=int(row[3]),
        within=int(row[4]),
        decided=int(row[5]),
        wait_sum=float(row[6]),
        wait_count=int(row[7]),
        talk_sum=float(row[8]),
        talk_count=int(row[9]),
    )


def queue_totals(
    session: Session, since: datetime, until: datetime, *, threshold: float, now: datetime
) -> list[QueueTotals]:
    """Per queue, the calls started in [since, until) that joined it (see QueueTotals)."""
    stmt = queue_totals_stmt(since, until, threshold=threshold, now=now).order_by(Call.queue)
    return [queue_totals_of(row) for row in session.execute(stmt)]


def tenant_totals(
    session: Session, since: datetime, until: datetime, *, threshold: float, now: datetime
) -> dict[int | None, QueueTotals]:
    """The queue figures of [since, until) per tenant (None: the centre's own calls): the
    centre-wide roll-up. Behind the session's tenant wall like every call query."""
    stmt = queue_totals_stmt(since, until, threshold=threshold, now=now, key=Call.tenant_id)
    return {row[0]: queue_totals_of(row) for row in session.execute(stmt)}


def operator_calls_stmt(
    since: datetime, until: datetime, *, by_slot: bool = False
) -> Select[*tuple[Any, ...]]:
    """([slot,] operator, answered, talk_sum, talk_count) of answered inbound calls per operator."""
    talk = service_figures.sql_operator_handle_time()
    keys = [epoch_slot(Call.started_at).label("slot")] if by_slot else []
    return (
        select(
            *keys,
            Call.operator,
            func.count(),
            func.coalesce(func.sum(talk), 0.0),
            func.count(talk),
        )
        .where(
            _in_range(since, until),
            Call.operator.is_not(None),
            Call.answered_at.is_not(None),
            # An operator's own click-to-call is not a call they answered.
            Call.direction == DIRECTION_INBOUND,
        )
        .group_by(*keys, Call.operator)
    )


def operator_calls(session: Session, since: datetime, until: datetime) -> dict[str, OperatorTotals]:
    """Answered calls per operator (the queue member name the call log keeps)."""
    return {
        str(name): OperatorTotals(str(name), int(n), float(talk_sum), int(talk_n))
        for name, n, talk_sum, talk_n in session.execute(operator_calls_stmt(since, until))
    }


def operator_pauses(
    session: Session, since: datetime, until: datetime, *, now: datetime
) -> dict[str, tuple[int, float]]:
    """Per operator login: (pauses overlapping [since, until), paused seconds inside it).

    A pause lasts from its `pause` row to the login's next row in the agent state log (unpause,
    log-out, log-in or a pause with another reason), or until `now` while it goes on.
    """
    from call_router.agent_models import AgentStateLog as Log

    following = func.lead(Log.at).over(partition_by=Log.sip_login, order_by=(Log.at, Log.id))
    spans = (
        select(
            Log.sip_login.label("login"),
            Log.action.label("action"),
            Log.at.label("start"),
            following.label("end"),
        )
        .where(Log.at >= since - PAUSE_LOOKBACK, Log.at < until)
        .subquery()
    )
    end = func.coalesce(spans.c.end, utc_at(now))
    clipped = epoch_seconds(least(end, utc_at(until))) - epoch_seconds(
        greatest(spans.c.start, utc_at(since))
    )
    stmt = (
        select(spans.c.login, func.count(), func.coalesce(func.sum(clipped), 0.0))
        .where(spans.c.action == "pause", end > utc_at(since))
        .group_by(spans.c.login)
    )
    return {str(login): (int(n), max(0.0, float(s))) for login, n, s in session.execute(stmt)}


def operator_names(session: Session) -> dict[str, str]:
    """SIP login -> the roster name (what the call log's `operator` holds)."""
    return {
        login: name for login, name in session.execute(select(Operator.sip_login, Operator.name))
    }


def operator_totals(
    session: Session,
    since: datetime,
    until: datetime,
    *,
    now: datetime,
    calls: dict[str, OperatorTotals] | None = None,
) -> list[OperatorTotals]:
    """Answered calls, talk and pauses per operator, by name (logins without a roster entry
    are shown by login). `calls`: operator_calls already added up (e.g. from the rollup)."""
    totals = dict(calls) if calls is not None else operator_calls(session, since, until)
    names = operator_names(session)
    for login, (count, seconds) in operator_pauses(session, since, until, now=now).items():
        name = names.get(login, login)
        base = totals.get(name, OperatorTotals(name))
        totals[name] = replace(
            base, pauses=base.pauses + count, pause_seconds=base.pause_seconds + seconds
        )
    return sorted(totals.values(), key=lambda t: t.operator)


def calls_per_direction(session: Session, since: datetime, until: datetime) -> dict[str, int]:
    """Calls started in [since, until) per direction (inbound, callback, internal)."""
    stmt = select(Call.direction, func.count()).where(_in_range(since, until))
    return {str(d): int(n) for d, n in session.execute(stmt.group_by(Call.direction))}
