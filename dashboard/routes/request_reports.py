"""The service-request report: requests by category, district and crew, time to assign and to
close against the SLA, reopened rate, for the requests created in a period.

`/reports/requests` (page, ru/en), `/reports/requests.csv` (every table in one CSV, text
defused for spreadsheets), `GET /api/reports/requests` (JSON). Supervisors and dispatchers,
behind the tenant wall (a tenant's reader gets its own requests). The figures are defined once
in call_router/request_figures.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from call_router import request_figures as rf
from call_router.request_reports import read_facts
from dashboard import csv_export
from dashboard.deps import ActorDep, SessionDep, StateDep
from dashboard.i18n import render
from dashboard.routes.reports import DateText, _range
from dashboard.routes.request_access import DISPATCHERS

router = APIRouter(tags=["requests"])
pages = APIRouter(include_in_schema=False)

FIGURE_COLUMNS = tuple(f.name for f in fields(rf.Figures))


@dataclass(frozen=True)
class Period:
    first: date
    last: date
    report: rf.RequestReport


class RequestReportOut(BaseModel):
    date_from: str
    date_to: str
    # Each figure's definition: call_router/request_figures.py.
    total: rf.Figures
    by_category: list[rf.Figures]
    by_district: list[rf.Figures]
    by_crew: list[rf.Figures]


def _build(
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    date_from: str | None,
    date_to: str | None,
) -> Period:
    if actor.principal.role not in DISPATCHERS:
        raise HTTPException(403, detail="your role may not open this")
    first, last = _range(state.zone, date_from or None, date_to or None)
    since = datetime.combine(first, time.min, tzinfo=state.zone)
    until = datetime.combine(last + timedelta(days=1), time.min, tzinfo=state.zone)
    facts = read_facts(session, since, until)
    return Period(first, last, rf.report(facts, datetime.now(UTC)))


@router.get("/api/reports/requests", response_model=RequestReportOut)
def request_report(
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    date_from: DateText = None,
    date_to: DateText = None,
) -> dict[str, Any]:
    """The figures of the requests created from `date_from` to `date_to` (local days,
    YYYY-MM-DD; default the last 7 days, at most 92): overall and per category, district
    and crew. Hours are means and medians; shares are 0..1 (null: nothing to divide)."""
    period = _build(state, session, actor, date_from, date_to)
    groups = period.report.groups
    return {
        "date_from": period.first.isoformat(),
        "date_to": period.last.isoformat(),
        "total": asdict(period.report.total),
        **{f"by_{name}": [asdict(f) for f in groups[name]] for name in rf.GROUPS},
    }


@pages.get("/reports/requests", name="request_report_page")
def request_report_page(
    request: Request,
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    date_from: DateText = None,
    date_to: DateText = None,
) -> Response:
    period = _build(state, session, actor, date_from, date_to)
    return render(
        state.templates,
        request,
        "requests/report.html",
        {
            "search": None,
            "p": period,
            "query": {"date_from": period.first.isoformat(), "date_to": period.last.isoformat()},
        },
        state.settings.default_language,
    )


def _cell(value: object) -> str:
    """Numbers as numbers (hours and shares to 3 places), text defused for spreadsheets."""
    if value is None:
        return ""
    if isinstance(value, float):
        return str(round(value, 3))
    if isinstance(value, int):
        return str(value)
    return csv_export.safe_cell(value)


def _rows(period: Period) -> Iterator[list[str]]:
    yield ["group", *FIGURE_COLUMNS]
    tables = [("total", [period.report.total]), *period.report.groups.items()]
    for group, table in tables:
        for figures in table:
            values = asdict(figures)
            yield [group, *(_cell(values[c]) for c in FIGURE_COLUMNS)]


@pages.get("/reports/requests.csv", name="request_report_csv")
def request_report_csv(
    state: StateDep,
    session: SessionDep,
    actor: ActorDep,
    date_from: DateText = None,
    date_to: DateText = None,
) -> StreamingResponse:
    period = _build(state, session, actor, date_from, date_to)
    name = f"requests-report-{period.first.isoformat()}-{period.last.isoformat()}.csv"
    return StreamingResponse(
        csv_export.encode_rows(list(_rows(period))),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
