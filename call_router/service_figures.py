"""Service level, ASA, AHT, abandoned calls: the one definition of each, in SQL and on values.

Definitions (also shown on the wallboard page):
- offered: calls that joined the queue;
- answered: of those, answered by an operator; abandoned: the caller hung up while waiting;
- wait: the router's logged wait, else the time from joining the queue to the answer, the
  hang-up or `now` (a caller still waiting);
- service level: answered within `threshold` seconds of joining, divided by the offered calls
  whose fate is decided (answered, ended, or already waiting longer than the threshold); a call
  still waiting under the threshold counts nowhere yet, so the figure never flickers down and up;
- ASA (average speed of answer): mean wait of the answered calls;
- AHT (average handle time): mean talk time of the finished answered calls (the log has no
  separate hold or after-call-work time): the logged talk, else from the answer to the hang-up.

Each rule below is written once against `Terms`, the few words it needs (and, or, coalesce, a
difference of two moments in seconds ...), and spelled by `SQL` into the GROUP BYs the
wallboard, the reports and the roll-ups run (call_router/call_sums.py), or by `PLAIN` on the
values of one call (the screen pop's wait, the staffing forecast's talk, the row-by-row path the
tests and the bench compare the SQL with). The database adds up; `QueueTotals` and
`OperatorTotals` hold its sums and turn them into the rates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from sqlalchemy import Float, and_, case, cast, func, not_, or_

from call_router.models import Call
from call_router.outcomes import ABANDONED_IN_QUEUE
from call_router.sql_functions import epoch_seconds, utc_at

V = TypeVar("V", covariant=True)


def share(part: float, whole: float) -> float | None:
    """`part / whole`; None while `whole` is 0 (nothing to measure yet). Every rate and mean."""
    return part / whole if whole else None


class Terms(Protocol, Generic[V]):
    """The words the rules are written in; `SQL` and `PLAIN` spell them."""

    def known(self, value: Any) -> V: ...  # IS NOT NULL
    def all(self, *conditions: Any) -> V: ...
    def any(self, *conditions: Any) -> V: ...
    def no(self, condition: Any) -> V: ...
    def first(self, *values: Any) -> V: ...  # the first value that is not NULL
    def seconds(self, later: Any, earlier: Any) -> V: ...  # NULL if either is
    def when(self, condition: Any, value: Any) -> V: ...  # NULL unless the condition holds


class _SqlTerms:
    """The rules as SQLAlchemy expressions over `calls` (SQLite and PostgreSQL alike)."""

    def known(self, value: Any) -> Any:
        return value.is_not(None)

    def all(self, *conditions: Any) -> Any:
        return and_(*conditions)

    def any(self, *conditions: Any) -> Any:
        return or_(*conditions)

    def no(self, condition: Any) -> Any:
        return not_(condition)

    def first(self, *values: Any) -> Any:
        return func.coalesce(*values)

    def seconds(self, later: Any, earlier: Any) -> Any:
        return epoch_seconds(later) - epoch_seconds(earlier)

    def when(self, condition: Any, value: Any) -> Any:
        return case((condition, value))


class _PlainTerms:
    """The rules on the Python values of one call."""

    def known(self, value: Any) -> bool:
        return value is not None

    def all(self, *conditions: Any) -> bool:
        return all(conditions)

    def any(self, *conditions: Any) -> bool:
        return any(conditions)

    def no(self, condition: Any) -> bool:
        return not condition

    def first(self, *values: Any) -> Any:
        return next((value for value in values if value is not None), None)

    def seconds(self, later: datetime | None, earlier: datetime | None) -> float | None:
        if later is None or earlier is None:
            return None
        return (later - earlier).total_seconds()

    def when(self, condition: Any, value: Any) -> Any:
        return value if condition else None


SQL = _SqlTerms()
PLAIN = _PlainTerms()


# --- the rules --------------------------------------------------------------------------------


def queue_wait(
    t: Terms[V], logged: Any, joined_at: Any, answered_at: Any, ended_at: Any, now: Any
) -> V:
    """Seconds in the queue: the logged wait, else joining → answer, hang-up or `now`."""
    return t.first(logged, t.seconds(t.first(answered_at, ended_at, now), joined_at))


def talk(t: Terms[V], logged: Any, answered_at: Any, ended_at: Any) -> V:
    """Seconds talking: the logged talk, else answer → hang-up (NULL while still talking)."""
    return t.first(logged, t.seconds(ended_at, answered_at))


def answered_in_time(t: Terms[V], answered: Any, wait: Any, threshold: float) -> V:
    """The service level's numerator (exactly the threshold still counts as in time)."""
    return t.all(answered, wait <= threshold)


def decided(t: Terms[V], answered: Any, ended: Any, wait: Any, threshold: float) -> V:
    """The service level's denominator: answered, ended, or already waiting past the threshold."""
    return t.any(answered, ended, wait > threshold)


def abandoned(t: Terms[V], answered: Any, outcome: Any) -> V:
    """Hung up while waiting in the queue."""
    return t.all(t.no(answered), outcome == ABANDONED_IN_QUEUE)


def speed_of_answer(t: Terms[V], answered: Any, wait: Any) -> V:
    """What ASA averages: the wait of an answered call (NULL for the others)."""
    return t.when(answered, wait)


def handle_time(t: Terms[V], answered: Any, ended: Any, talked: Any) -> V:
    """What AHT averages: the talk of a finished answered call (NULL for the others)."""
    return t.when(t.all(answered, ended), talked)


# --- the rules over the calls table -------------------------------------------------------------


def sql_queue_wait(now: datetime) -> Any:
    """queue_wait over `calls` (a waiting caller's wait measured up to `now`)."""
    return queue_wait(
        SQL,
        cast(Call.wait_seconds, Float),
        Call.queue_joined_at,
        Call.answered_at,
        Call.ended_at,
        utc_at(now),
    )


def sql_talk() -> Any:
    """talk over `calls`."""
    return talk(SQL, cast(Call.talk_seconds, Float), Call.answered_at, Call.ended_at)


def _count_if(condition: Any) -> Any:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def sql_queue_sums(*, threshold: float, now: datetime) -> list[Any]:
    """Aggregates over the calls that joined a queue, in QueueTotals' order after `queue`:
    offered, answered, abandoned, within, decided, wait_sum, wait_count, talk_sum, talk_count."""
    wait = sql_queue_wait(now)
    answered = SQL.known(Call.answered_at)
    ended = SQL.known(Call.ended_at)
    asa_wait = speed_of_answer(SQL, answered, wait)
    aht_talk = handle_time(SQL, answered, ended, sql_talk())
    return [
        func.count(),
        func.count(Call.answered_at),
        _count_if(abandoned(SQL, answered, Call.outcome)),
        _count_if(answered_in_time(SQL, answered, wait, threshold)),
        _count_if(decided(SQL, answered, ended, wait, threshold)),
        func.coalesce(func.sum(asa_wait), 0.0),
        func.count(asa_wait),
        func.coalesce(func.sum(aht_talk), 0.0),
        func.count(aht_talk),
    ]


def sql_operator_handle_time() -> Any:
    """An answered call's handle time (the query keeps answered calls only)."""
    return handle_time(SQL, True, SQL.known(Call.ended_at), sql_talk())


# --- the sums and what they make ------------------------------------------------------------------


@dataclass(frozen=True)
class QueueTotals:
    """Sums for one queue over a range (call_router/call_sums.py adds them up); the rates are
    made here. decided/within are the service level's denominator/numerator."""

    queue: str
    offered: int
    answered: int
    abandoned: int
    within: int
    decided: int
    wait_sum: float
    wait_count: int
    talk_sum: float
    talk_count: int

    @property
    def service_level(self) -> float | None:
        return share(self.within, self.decided)

    @property
    def asa_seconds(self) -> float | None:
        return share(self.wait_sum, self.wait_count)

    @property
    def aht_seconds(self) -> float | None:
        return share(self.talk_sum, self.talk_count)

    @property
    def abandon_rate(self) -> float | None:
        return share(self.abandoned, self.offered)


@dataclass(frozen=True)
class OperatorTotals:
    """One operator over a range: calls answered, talk, pauses (from the agent state log)."""

    operator: str
    answered: int = 0
    talk_sum: float = 0.0
    talk_count: int = 0
    pauses: int = 0
    pause_seconds: float = 0.0

    @property
    def aht_seconds(self) -> float | None:
        return share(self.talk_sum, self.talk_count)


@dataclass(frozen=True)
class QueueStats:
    """One queue's figures as the wallboard and the reports show them."""

    queue: str
    waiting: int = 0
    longest_wait_seconds: int | None = None
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    # 0..1, None while no call has been decided.
    service_level: float | None = None
    asa_seconds: float | None = None
    aht_seconds: float | None = None


# --- the row-by-row path: the same rules on plain values ------------------------------------------


@dataclass(frozen=True)
class QueueCall:
    """One call that reached a queue, reduced to what the figures need."""

    queue: str
    answered: bool
    ended: bool
    # Answered: seconds from joining to the answer. Unanswered: seconds waited so far / in all.
    wait_seconds: float | None
    talk_seconds: float | None = None
    outcome: str | None = None


def queue_call(call: Call, now: datetime) -> QueueCall:
    """A call-log row reduced to the figures (waits measured up to `now` if still waiting)."""
    joined = call.queue_joined_at or call.started_at
    wait = queue_wait(PLAIN, call.wait_seconds, joined, call.answered_at, call.ended_at, now)
    talked = talk(PLAIN, call.talk_seconds, call.answered_at, call.ended_at)
    return QueueCall(
        queue=call.queue or "",
        answered=call.answered_at is not None,
        ended=call.ended_at is not None,
        # Another process's clock a little behind: never a negative duration.
        wait_seconds=None if wait is None else max(0.0, float(wait)),
        talk_seconds=None if talked is None else max(0.0, float(talked)),
        outcome=call.outcome,
    )


def plain_totals(calls: Iterable[QueueCall], threshold: float) -> list[QueueTotals]:
    """QueueTotals per queue (by name) added up call by call: what sql_queue_sums adds up."""
    sums: dict[str, list[float]] = {}
    for call in calls:
        wait = call.wait_seconds if call.wait_seconds is not None else 0.0
        asa_wait = speed_of_answer(PLAIN, call.answered, call.wait_seconds)
        aht_talk = handle_time(PLAIN, call.answered, call.ended, call.talk_seconds)
        row = sums.setdefault(call.queue, [0.0] * 9)
        for index, value in enumerate(
            (
                1,
                call.answered,
                abandoned(PLAIN, call.answered, call.outcome),
                answered_in_time(PLAIN, call.answered, wait, threshold),
                decided(PLAIN, call.answered, call.ended, wait, threshold),
                asa_wait or 0.0,
                asa_wait is not None,
                aht_talk or 0.0,
                aht_talk is not None,
            )
        ):
            row[index] += value
    return [
        QueueTotals(
            queue=queue,
            offered=int(row[0]),
            answered=int(row[1]),
            abandoned=int(row[2]),
            within=int(row[3]),
            decided=int(row[4]),
            wait_sum=row[5],
            wait_count=int(row[6]),
            talk_sum=row[7],
            talk_count=int(row[8]),
        )
        for queue, row in sorted(sums.items())
    ]
