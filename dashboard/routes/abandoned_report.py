"""The abandoned-callers list (issue 15): unanswered queue callers, their callback and call-back.

GET /api/reports/abandoned   JSON: the unanswered queue callers of a period
GET /reports/abandoned       the same as a page (links to each callback entry)
GET /reports/abandoned.csv   the same as CSV, formula-safe
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from call_router import abandoned, tenant_wall
from call_router.settings import QUEUES
from dashboard import csv_export
from dashboard.deps import SessionDep, StateDep
from dashboard.i18n import render
from dashboard.routes.analytics_params import DateText, TenantParam, local_days

router = APIRouter()

QueueParam = Annotated[str | None, Query(max_length=32)]

ABANDONED_COLUMNS = (
    "call_id", "started_at", "caller_number", "caller_name", "queue", "outcome",
    "waited_seconds", "callback_id", "callback_status", "called_back_at", "called_back_by",
    "callback_answered", "tenant",
)  # fmt: skip


def _queue(value: str | None) -> str | None:
    if not value:
        return None
    if value not in QUEUES:
        raise HTTPException(status_code=422, detail=f"queue: one of {', '.join(QUEUES)}")
    return value


@dataclass(frozen=True)
class AbandonedPeriod:
    """The routes' one set of options → the unanswered callers of those local days."""

    first: date
    last: date
    queue: str | None  # as asked
    rows: list[abandoned.AbandonedCall]

    @property
    def called_back(self) -> int:
        return sum(1 for r in self.rows if r.called_back_at is not None)


def abandoned_period(
    session: SessionDep,
    state: StateDep,
    date_from: DateText = None,
    date_to: DateText = None,
    queue: QueueParam = None,
    tenant: TenantParam = None,
) -> AbandonedPeriod:
    first, last = local_days(state.zone, date_from or None, date_to or None)
    tenant_wall.narrow(session, tenant or None)
    since = datetime.combine(first, time(0), state.zone).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), time(0), state.zone).astimezone(UTC)
    rows = abandoned.abandoned_calls(session, since, until, queue=_queue(queue))
    return AbandonedPeriod(first, last, queue, rows)


AbandonedDep = Annotated[AbandonedPeriod, Depends(abandoned_period)]


def _iso(value: datetime | None, zone: ZoneInfo) -> str | None:
    return value.astimezone(zone).isoformat(timespec="seconds") if value is not None else None


def _abandoned_json(row: abandoned.AbandonedCall, zone: ZoneInfo) -> dict[str, Any]:
    data = asdict(row)
    data["started_at"] = _iso(row.started_at, zone)
    data["called_back_at"] = _iso(row.called_back_at, zone)
    data["callback_url"] = (
        f"/callbacks/{row.callback_id}/history" if row.callback_id is not None else None
    )
    return data


@router.get("/api/reports/abandoned")
def abandoned_api(state: StateDep, found: AbandonedDep) -> dict[str, Any]:
    """Unanswered queue callers of the local days date_from..date_to (default today), newest
    first: who, when, how long they waited, their callback entry and when they were called
    back."""
    return {
        "date_from": found.first.isoformat(),
        "date_to": found.last.isoformat(),
        "queue": found.queue or None,
        "count": len(found.rows),
        "called_back": found.called_back,
        "rows": [_abandoned_json(r, state.zone) for r in found.rows],
    }


@router.get("/reports/abandoned", response_class=HTMLResponse)
def abandoned_page(request: Request, state: StateDep, found: AbandonedDep) -> Response:
    query = {
        "date_from": found.first.isoformat(),
        "date_to": found.last.isoformat(),
        "queue": found.queue or "",
    }
    return render(
        state.templates,
        request,
        "abandoned.html",
        {
            "search": None,
            "rows": [_abandoned_json(r, state.zone) for r in found.rows],
            "query": query,
            "queues": QUEUES,
            "called_back": found.called_back,
        },
        state.settings.default_language,
    )


@router.get("/reports/abandoned.csv")
def abandoned_csv(state: StateDep, found: AbandonedDep) -> StreamingResponse:
    def lines() -> Iterator[str]:
        yield from csv_export.encode_rows([ABANDONED_COLUMNS])
        for row in found.rows:
            data = _abandoned_json(row, state.zone)
            yield from csv_export.encode_rows(
                [[csv_export.safe_cell(data[column]) for column in ABANDONED_COLUMNS]]
            )

    name = f"abandoned-{found.first.isoformat()}-{found.last.isoformat()}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
