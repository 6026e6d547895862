"""Service-request report figures, each defined once: how many, how fast assigned, how fast
finished and how many within their SLA deadline, how many reopened - overall and per
category, district and crew. Pure: the facts are read by call_router/request_reports.py.

Definitions (a request counts in the period it was created in):
- time to assign: from creation to its first assignment to a crew;
- time to close: from creation to `closed_at`, for requests finished now (done, cannot fix,
  duplicate, not ours, closed; a reopened request is open again until it is finished again);
- within SLA: finished by its deadline. The share's denominator is every request whose
  outcome is decided: finished, or still open and already past its deadline;
- reopened rate: requests reopened at least once (finished, then back to `new`) out of the
  requests ever finished.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from statistics import median

from call_router.service_figures import share

HOUR = 3600.0
NONE_LABEL = "—"


@dataclass(frozen=True)
class RequestFacts:
    """One request, as the report needs it."""

    category: str
    district: str | None
    crew: str | None
    created_at: datetime
    sla_deadline: datetime
    assigned_at: datetime | None
    closed_at: datetime | None
    reopened: bool


@dataclass(frozen=True)
class Figures:
    key: str
    requests: int
    assigned: int
    assign_hours_mean: float | None
    assign_hours_median: float | None
    finished: int
    close_hours_mean: float | None
    close_hours_median: float | None
    within_sla: int
    sla_decided: int
    sla_share: float | None
    overdue_open: int
    reopened: int
    reopened_rate: float | None


def _hours(spans: list[float]) -> tuple[float | None, float | None]:
    if not spans:
        return None, None
    return round(sum(spans) / len(spans) / HOUR, 2), round(median(spans) / HOUR, 2)


def figures(key: str, facts: Iterable[RequestFacts], now: datetime) -> Figures:
    rows = list(facts)
    assign = [(f.assigned_at - f.created_at).total_seconds() for f in rows if f.assigned_at]
    finished = [f for f in rows if f.closed_at is not None]
    close = [(f.closed_at - f.created_at).total_seconds() for f in finished if f.closed_at]
    within = sum(1 for f in finished if f.closed_at is not None and f.closed_at <= f.sla_deadline)
    overdue_open = sum(1 for f in rows if f.closed_at is None and now > f.sla_deadline)
    reopened = sum(1 for f in rows if f.reopened)
    ever_finished = sum(1 for f in rows if f.closed_at is not None or f.reopened)
    assign_mean, assign_median = _hours(assign)
    close_mean, close_median = _hours(close)
    decided = len(finished) + overdue_open
    return Figures(
        key=key,
        requests=len(rows),
        assigned=len(assign),
        assign_hours_mean=assign_mean,
        assign_hours_median=assign_median,
        finished=len(finished),
        close_hours_mean=close_mean,
        close_hours_median=close_median,
        within_sla=within,
        sla_decided=decided,
        sla_share=share(within, decided),
        overdue_open=overdue_open,
        reopened=reopened,
        reopened_rate=share(reopened, ever_finished),
    )


def grouped(
    facts: Iterable[RequestFacts], key: Callable[[RequestFacts], str | None], now: datetime
) -> list[Figures]:
    """Figures per value of `key` (no value: "—"), the busiest first."""
    groups: dict[str, list[RequestFacts]] = {}
    for fact in facts:
        groups.setdefault(key(fact) or NONE_LABEL, []).append(fact)
    table = [figures(name, rows, now) for name, rows in groups.items()]
    return sorted(table, key=lambda f: (-f.requests, f.key))


GROUPS: dict[str, Callable[[RequestFacts], str | None]] = {
    "category": lambda f: f.category,
    "district": lambda f: f.district,
    "crew": lambda f: f.crew,
}


@dataclass(frozen=True)
class RequestReport:
    total: Figures
    # "category", "district", "crew" -> figures per value.
    groups: dict[str, list[Figures]]


def report(facts: Iterable[RequestFacts], now: datetime) -> RequestReport:
    rows = list(facts)
    return RequestReport(
        total=figures("total", rows, now),
        groups={name: grouped(rows, key, now) for name, key in GROUPS.items()},
    )
