"""Wallboard arithmetic: call stages, time in stage and alerts from plain values.

Pure: no database, no Redis, no clock (callers pass `now`). The dashboard gathers the facts
(the SQL sums of call_router.call_sums, the live state in Redis); the per-queue figures and their
definitions are call_router.service_figures', made into rows by call_router.reports.queue_figures.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from call_router.service_figures import QueueStats

STAGE_MENU = "menu"
STAGE_QUEUE = "queue"
STAGE_TALKING = "talking"


@dataclass(frozen=True)
class Alert:
    # "service_level" | "queue_waiting" | "callbacks_overdue" | "requests_overdue" |
    # "requests_escalated"
    kind: str
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
    # The cluster node the call is on (None: one box).
    node: str | None = None


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
    overdue_requests: int = 0,
    escalated_requests: int = 0,
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
    # Service requests nobody finished in time: the dispatchers' first, then the supervisors'.
    if overdue_requests > 0:
        found.append(Alert("requests_overdue", None, overdue_requests, 0))
    if escalated_requests > 0:
        found.append(Alert("requests_escalated", None, escalated_requests, 0))
    return found
