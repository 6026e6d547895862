"""Wallboard arithmetic: per-queue figures, call stages and alerts from plain values.

Pure: no database, no Redis, no clock (callers pass `now`). The dashboard gathers the facts
(call_router.queries, the live state in Redis) and this module decides what they add up to, so
the definitions written on the wallboard page are tested here with plain numbers.

Definitions (also shown on the page):
- offered: calls that joined the queue today;
- answered: of those, answered by an operator; abandoned: the caller hung up while waiting;
- service level: answered within `threshold` seconds of joining, divided by the offered calls
  whose fate is decided (answered, ended, or already waiting longer than the threshold); a call
  still waiting under the threshold counts nowhere yet, so the figure never flickers down and up;
- ASA (average speed of answer): mean wait of the answered calls;
- AHT (average handle time): mean talk time of the finished answered calls (the log has no
  separate hold or after-call-work time yet).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from call_router.outcomes import ABANDONED_IN_QUEUE

STAGE_MENU = "menu"
STAGE_QUEUE = "queue"
STAGE_TALKING = "talking"


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


@dataclass(frozen=True)
class QueueStats:
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


@dataclass(frozen=True)
class Alert:
    kind: str  # "service_level" | "queue_waiting" | "callbacks_overdue"
    queue: str | None
    value: float
    threshold: float


@dataclass(frozen=True)
class LiveCall:
    """A call in progress as the wallboard shows it."""

    call_id: int | None
    caller_number: str
    caller_name: str | None
    stage: str
    queue: str | None
    operator: str | None
    seconds_in_stage: int


@dataclass
class _Acc:
    offered: int = 0
    answered: int = 0
    abandoned: int = 0
    within: int = 0
    decided: int = 0
    waits: list[float] = field(default_factory=list)
    talks: list[float] = field(default_factory=list)


def mean(values: Iterable[float]) -> float | None:
    items = list(values)
    return sum(items) / len(items) if items else None


def service_level(calls: Iterable[QueueCall], threshold: float) -> float | None:
    """Share of decided calls answered within `threshold` seconds (see module docstring)."""
    within = decided = 0
    for call in calls:
        counted, good = _sl_fate(call, threshold)
        decided += counted
        within += good
    return within / decided if decided else None


def _sl_fate(call: QueueCall, threshold: float) -> tuple[bool, bool]:
    """(counts in the denominator, answered in time)."""
    wait = call.wait_seconds if call.wait_seconds is not None else 0.0
    if call.answered:
        return True, wait <= threshold
    if call.ended:
        return True, False
    # Still waiting: already a miss once past the threshold, undecided before.
    return wait > threshold, False


def queue_stats(
    calls: Iterable[QueueCall],
    *,
    queues: Sequence[str],
    waiting: Mapping[str, int],
    current_waits: Mapping[str, Sequence[float]],
    threshold: float,
) -> list[QueueStats]:
    """Figures per queue: every queue in `queues` (even idle), then any other seen, by name.

    `waiting`: callers waiting now per queue (from Asterisk when known); `current_waits`: the
    seconds each waiting caller has waited so far, for the longest wait.
    """
    acc: dict[str, _Acc] = {name: _Acc() for name in queues}
    for call in calls:
        a = acc.setdefault(call.queue, _Acc())
        a.offered += 1
        if call.answered:
            a.answered += 1
            if call.wait_seconds is not None:
                a.waits.append(call.wait_seconds)
            if call.ended and call.talk_seconds is not None:
                a.talks.append(call.talk_seconds)
        elif call.outcome == ABANDONED_IN_QUEUE:
            a.abandoned += 1
        counted, good = _sl_fate(call, threshold)
        a.decided += counted
        a.within += good
    for name in list(waiting) + list(current_waits):
        acc.setdefault(name, _Acc())
    ordered = list(queues) + sorted(name for name in acc if name not in queues)
    result = []
    for name in ordered:
        a = acc[name]
        waits_now = current_waits.get(name, ())
        result.append(
            QueueStats(
                queue=name,
                waiting=max(waiting.get(name, 0), len(waits_now)),
                longest_wait_seconds=int(max(waits_now)) if waits_now else None,
                offered=a.offered,
                answered=a.answered,
                abandoned=a.abandoned,
                service_level=a.within / a.decided if a.decided else None,
                asa_seconds=mean(a.waits),
                aht_seconds=mean(a.talks),
            )
        )
    return result


def stage_of(answered_at: datetime | None, queue_joined_at: datetime | None) -> str:
    """Where a call in progress is, from the call log's timestamps."""
    if answered_at is not None:
        return STAGE_TALKING
    if queue_joined_at is not None:
        return STAGE_QUEUE
    return STAGE_MENU


def stage_started(
    stage: str,
    started_at: datetime,
    queue_joined_at: datetime | None,
    answered_at: datetime | None,
) -> datetime:
    """When the call entered `stage` (falls back to earlier moments if one is missing)."""
    if stage == STAGE_TALKING and answered_at is not None:
        return answered_at
    if stage in (STAGE_TALKING, STAGE_QUEUE) and queue_joined_at is not None:
        return queue_joined_at
    return started_at


def seconds_between(earlier: datetime | None, now: datetime) -> int:
    """Whole seconds from `earlier` to `now`, never negative (clock skew between processes)."""
    if earlier is None:
        return 0
    return max(0, int((now - earlier).total_seconds()))


def alerts(
    stats: Iterable[QueueStats],
    *,
    service_level_target: float,
    waiting_threshold: int,
    overdue_callbacks: int = 0,
) -> list[Alert]:
    """What needs a supervisor now. A queue with no decided call has no service level to breach."""
    found: list[Alert] = []
    for s in stats:
        if s.service_level is not None and s.service_level < service_level_target:
            found.append(Alert("service_level", s.queue, s.service_level, service_level_target))
        if waiting_threshold > 0 and s.waiting > waiting_threshold:
            found.append(Alert("queue_waiting", s.queue, s.waiting, waiting_threshold))
    if overdue_callbacks > 0:
        found.append(Alert("callbacks_overdue", None, overdue_callbacks, 0))
    return found
