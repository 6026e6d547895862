"""Read-side queries over the call log: what the dashboard and the JSON API show.

Nothing here writes. Every function takes an open `Session` so the caller decides the
transaction and the database (SQLite or PostgreSQL, same SQL).
"""

from __future__ import annotations

from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass, replace
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    and_,
    func,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, selectinload
from sqlalchemy.sql.functions import FunctionElement

from call_router import service_figures, tenants
from call_router.models import (
    CALLBACK_OPEN,
    DIRECTION_INBOUND,
    Call,
    Callback,
    Operator,
)
from call_router.numbers import ANONYMOUS, normalize_number
from call_router.reports import SLOT_SECONDS
from call_router.service_figures import OperatorTotals, QueueTotals
from call_router.sql_functions import epoch_seconds, greatest, least, utc_at

MAX_PAGE = 1000
# A busy day of a city hotline fits; the page refreshes every few seconds, so keep it bounded.
TODAY_LIMIT = 500


@dataclass(frozen=True)
class CallFilter:
    """The call log's search form. Every field is optional; all given ones must match.

    `caller` is spelled however the user typed it (`+7 495 123-45-67`, `8 495 1234567`): it is
    normalised exactly as the call log normalised it when the call came in (`country` must be
    the settings' `country_code`), then matched on equality so the index on caller_number works.
    `since` is inclusive, `until` exclusive (a date range "1st to 3rd" is [1st 00:00, 4th 00:00)).
    """

    caller: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    queue: str | None = None
    intent: str | None = None
    outcome: str | None = None
    operator: str | None = None
    direction: str | None = None


def _filtered(stmt: Select[Any], flt: CallFilter, country: str) -> Select[Any] | None:
    """`stmt` narrowed by `flt`; None when the filter can match nothing."""
    if flt.caller is not None:
        wanted = normalize_number(flt.caller, country)
        # Garbage or empty input normalises to "anonymous": a search for "abc" must not list
        # every withheld-number call. Only an explicit "anonymous" search does that.
        if wanted == ANONYMOUS and flt.caller.strip().lower() != ANONYMOUS:
            return None
        stmt = stmt.where(Call.caller_number == wanted)
    if flt.since is not None:
        stmt = stmt.where(Call.started_at >= flt.since)
    if flt.until is not None:
        stmt = stmt.where(Call.started_at < flt.until)
    # Exact matches: these are codes from a closed vocabulary (queues, intents, outcomes) or an
    # operator's name picked from a list, and equality keeps the column indexes usable.
    for column, value in (
        (Call.queue, flt.queue),
        (Call.intent, flt.intent),
        (Call.outcome, flt.outcome),
        (Call.operator, flt.operator),
        (Call.direction, flt.direction),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt


@dataclass(frozen=True)
class CallPosition:
    """Where a page of the newest-first call log ended: the next page starts after it.

    Keyset pagination: unlike an offset, the database seeks straight to it through the
    (started_at, id) index however deep the page, and new calls do not shift the pages.
    """

    started_at: datetime
    call_id: int

    def token(self) -> str:
        """An opaque, URL-safe cursor for the API."""
        raw = f"{self.started_at.astimezone(UTC).isoformat()}|{self.call_id}"
        return urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def from_token(cls, token: str) -> CallPosition:
        """The position in a cursor; ValueError for anything this module did not write."""
        try:
            raw = urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
            when, call_id = raw.split("|")
            started_at = datetime.fromisoformat(when)
            position = cls(started_at, int(call_id))
        except (ValueError, UnicodeDecodeError) as exc:
            raise ValueError("not a call log cursor") from exc
        if started_at.tzinfo is None:
            raise ValueError("not a call log cursor")
        return position


def list_calls(
    session: Session,
    *,
    caller: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
    country: str = "RU",
    where: CallFilter | None = None,
    after: CallPosition | None = None,
) -> list[Call]:
    """Calls newest first, narrowed by `where` (or the older `caller`/`since` shortcuts).

    `after`: only calls older than that position (the next page of a keyset pagination).
    """
    flt = where or CallFilter(caller=caller, since=since)
    stmt = _filtered(select(Call), flt, country)
    if stmt is None:
        return []
    if after is not None:
        stmt = stmt.where(
            tuple_(Call.started_at, Call.id)
            < tuple_(utc_at(after.started_at), literal(after.call_id))
        )
    stmt = (
        stmt.order_by(Call.started_at.desc(), Call.id.desc())
        .limit(max(0, min(limit, MAX_PAGE)))
        .offset(max(0, offset))
    )
    return list(session.scalars(stmt))


def count_calls(
    session: Session, where: CallFilter, *, country: str = "RU", cap: int | None = None
) -> int:
    """How many calls `where` matches (for the call log's page count).

    `cap`: stop counting there (the result is then at most `cap`). An exact count reads
    every matching index entry - ~0.1-0.3 s for an unfiltered million calls - while a page
    needs only to know whether there are more than its links can reach.
    """
    if cap is None:
        stmt = _filtered(select(func.count()).select_from(Call), where, country)
        return 0 if stmt is None else int(session.scalar(stmt) or 0)
    matching = _filtered(select(Call.id), where, country)
    if matching is None:
        return 0
    bounded = matching.limit(max(0, cap)).subquery()
    return int(session.scalar(select(func.count()).select_from(bounded)) or 0)


_DISTINCT_COLUMNS = ("queue", "intent", "outcome", "operator")


def distinct_values(session: Session, column_name: str, *, limit: int = 200) -> list[str]:
    """Values seen in a filterable column (queue, intent, outcome, operator): form options.

    A loose index scan (a recursive CTE hopping from one value to the next through the
    column's index): a few dozen index probes instead of reading every row, which a plain
    DISTINCT does on PostgreSQL (no skip scan) - ~100 ms at a million calls versus < 1 ms.
    """
    if column_name not in _DISTINCT_COLUMNS:
        raise KeyError(column_name)
    if not tenants.scope_of(session).everything:
        # Behind a tenant wall: an ORM query, which the wall narrows (raw SQL it would not).
        column = getattr(Call, column_name)
        walled = (
            select(column)
            .where(column.is_not(None), column != "")
            .distinct()
            .order_by(column)
            .limit(limit)
        )
        return [str(value) for value in session.scalars(walled)]
    # The name is one of the fixed identifiers above, never user input.
    sql = text(
        f"""
        WITH RECURSIVE seen(value) AS (
            SELECT min({column_name}) FROM calls
            UNION ALL
            SELECT (SELECT min({column_name}) FROM calls WHERE {column_name} > seen.value)
            FROM seen WHERE seen.value IS NOT NULL
        )
        SELECT value FROM seen WHERE value IS NOT NULL AND value <> '' LIMIT :limit
        """
    )
    return [str(value) for value in session.scalars(sql, {"limit": limit})]


def start_of_day(now: datetime, tz: tzinfo) -> datetime:
    """Midnight of `now`'s local date in `tz`, as an aware datetime (comparable to UTC columns)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(tz)
    return datetime.combine(local.date(), time.min, tzinfo=tz)


def todays_calls(
    session: Session, now: datetime, tz: tzinfo, *, limit: int = TODAY_LIMIT
) -> list[Call]:
    """Calls started since local midnight in `tz` (the hotline's day, not UTC's), newest first."""
    return list_calls(session, since=start_of_day(now, tz), limit=limit)


def call_with_events(session: Session, call_id: int) -> Call | None:
    """One call with its timeline loaded (events ordered by time), or None."""
    stmt = select(Call).where(Call.id == call_id).options(selectinload(Call.events))
    return session.scalars(stmt).one_or_none()


# --- the wallboard ----------------------------------------------------------------------

# A call the router lost track of (crash before hang-up) must not stay "in progress" forever.
STALE_CALL = timedelta(hours=4)


def open_calls(session: Session, now: datetime) -> list[Call]:
    """Calls not ended yet (not older than STALE_CALL): the wallboard's calls in progress.

    With queue_totals for today's figures, the wallboard reads a handful of rows instead of
    the whole day's (the partial index of migration 0008 holds only open calls).
    """
    stmt = select(Call).where(Call.ended_at.is_(None), Call.started_at >= now - STALE_CALL)
    return list(session.scalars(stmt.order_by(Call.started_at.asc(), Call.id.asc())))


@dataclass(frozen=True)
class RosterEntry:
    name: str
    login: str | None = None
    # From agent_states when that table exists: "logged_out" / "paused" / "available".
    state: str | None = None
    reason: str | None = None
    since: datetime | None = None


def roster(session: Session) -> list[RosterEntry]:
    """Enabled operators with their desired state, for the wallboard's operator panel."""
    try:
        from call_router.agent_models import AgentState
    except ImportError:  # the agent-state tables arrive with another change
        rows = session.execute(
            select(Operator.name, Operator.sip_login)
            .where(Operator.enabled.is_(True))
            .order_by(Operator.name)
        )
        return [RosterEntry(name, login) for name, login in rows]
    stmt = (
        select(Operator.name, Operator.sip_login, AgentState)
        .outerjoin(AgentState, AgentState.sip_login == Operator.sip_login)
        .where(Operator.enabled.is_(True))
        .order_by(Operator.name)
    )
    entries = []
    for name, login, agent in session.execute(stmt):
        if agent is None:
            # No row: logged in to all skills (the roster's default).
            entries.append(RosterEntry(name, login, "available"))
            continue
        state = "logged_out" if not agent.logged_in else "paused" if agent.paused else "available"
        entries.append(RosterEntry(name, login, state, agent.pause_reason, agent.since))
    return entries


def disposition_of(session: Session, call_id: int) -> Any | None:
    """The operator's disposition of a call, if that table exists and has one."""
    try:
        from call_router.agent_models import CallDisposition
    except ImportError:
        return None
    stmt = select(CallDisposition).where(CallDisposition.call_id == call_id)
    return session.scalars(stmt).one_or_none()


def overdue_callbacks(session: Session, now: datetime) -> int | None:
    """Open callbacks past their promised time; None while the schema has no due time yet."""
    due = getattr(Callback, "due_at", None)
    if due is None:
        return None
    stmt = (
        select(func.count())
        .select_from(Callback)
        .where(Callback.status == CALLBACK_OPEN, due.is_not(None), due < now)
    )
    return int(session.scalar(stmt) or 0)


# --- reports: the database adds up, Python only folds the small results -------------------

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


def calls_per_slot(session: Session, since: datetime, until: datetime) -> dict[int, int]:
    """Calls started in [since, until) per UTC quarter hour (see SLOT_SECONDS)."""
    slot = epoch_slot(Call.started_at).label("slot")
    stmt = select(slot, func.count()).where(_in_range(since, until)).group_by(slot)
    return {int(s): int(n) for s, n in session.execute(stmt)}


def calls_per_intent(session: Session, since: datetime, until: datetime) -> dict[str | None, int]:
    """Calls started in [since, until) per intent (None: no intent recognised)."""
    stmt = select(Call.intent, func.count()).where(_in_range(since, until)).group_by(Call.intent)
    return {intent: int(n) for intent, n in session.execute(stmt)}


def calls_per_slot_intent_stmt(since: datetime, until: datetime) -> Select[*tuple[Any, ...]]:
    """(slot, intent, calls): calls_per_slot and calls_per_intent in one, for the rollup."""
    slot = epoch_slot(Call.started_at).label("slot")
    return (
        select(slot, Call.intent, func.count())
        .where(_in_range(since, until))
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
        .where(_in_range(since, until), Call.queue.is_not(None), Call.queue_joined_at.is_not(None))
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
