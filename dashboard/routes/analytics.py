"""Supervisor analytics (issue 15): the abandoned-callers list and the staffing forecast.

Every figure is read through ORM statements behind the tenant wall (call_router/tenant_wall.py),
so a tenant's supervisor sees their own company's callers and forecast (`?tenant=` narrows the
centre's view). Rule: `auth.SUPERVISOR_ONLY` (dashboard/main.py).

    GET /api/reports/abandoned   JSON: the unanswered queue callers of a period
    GET /reports/abandoned       the same as a page (links to each callback entry)
    GET /reports/abandoned.csv   the same as CSV, formula-safe
    GET /api/staffing            JSON: operators needed per quarter hour of the coming week
    GET /staffing                the same as a page with an inline SVG chart
    GET /staffing.csv            the same as CSV
    GET /api/reports/agents      JSON: each operator's sessions per day and over the period
    GET /reports/agents          the same as a printable page
    GET /reports/agents.csv      the same as CSV
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from call_router import (
    abandoned,
    agent_sessions,
    agent_sessions_store,
    staffing,
    staffing_store,
    tenant_wall,
)
from call_router.erlang import ErlangError, Target, target_from_options
from call_router.settings import QUEUES
from dashboard import csv_export
from dashboard.deps import SessionDep, StateDep
from dashboard.i18n import render

router = APIRouter(tags=["analytics"])

MAX_DAYS = 93
DateText = Annotated[str | None, Query(max_length=10)]
QueueParam = Annotated[str | None, Query(max_length=32)]
TenantParam = Annotated[str | None, Query(max_length=32)]

ABANDONED_COLUMNS = (
    "call_id", "started_at", "caller_number", "caller_name", "queue", "outcome",
    "waited_seconds", "callback_id", "callback_status", "called_back_at", "called_back_by",
    "callback_answered", "tenant",
)  # fmt: skip


def _days(zone: ZoneInfo, date_from: str | None, date_to: str | None) -> tuple[date, date]:
    today = datetime.now(zone).date()
    try:
        last = date.fromisoformat(date_to) if date_to else today
        first = date.fromisoformat(date_from) if date_from else last
    except ValueError as exc:
        raise HTTPException(status_code=422, detail="dates are YYYY-MM-DD") from exc
    if first > last:
        first, last = last, first
    if (last - first).days >= MAX_DAYS:
        raise HTTPException(status_code=422, detail=f"at most {MAX_DAYS} days")
    return first, last


def _queue(value: str | None) -> str | None:
    if not value:
        return None
    if value not in QUEUES:
        raise HTTPException(status_code=422, detail=f"queue: one of {', '.join(QUEUES)}")
    return value


def _abandoned(
    session: Session,
    zone: ZoneInfo,
    date_from: str | None,
    date_to: str | None,
    queue: str | None,
    tenant: str | None,
) -> tuple[date, date, list[abandoned.AbandonedCall]]:
    first, last = _days(zone, date_from or None, date_to or None)
    tenant_wall.narrow(session, tenant or None)
    since = datetime.combine(first, time(0), zone).astimezone(UTC)
    until = datetime.combine(last + timedelta(days=1), time(0), zone).astimezone(UTC)
    return first, last, abandoned.abandoned_calls(session, since, until, queue=_queue(queue))


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
def abandoned_api(
    session: SessionDep,
    state: StateDep,
    date_from: DateText = None,
    date_to: DateText = None,
    queue: QueueParam = None,
    tenant: TenantParam = None,
) -> dict[str, Any]:
    """Unanswered queue callers of the local days date_from..date_to (default today), newest
    first: who, when, how long they waited, their callback entry and when they were called
    back."""
    first, last, rows = _abandoned(session, state.zone, date_from, date_to, queue, tenant)
    return {
        "date_from": first.isoformat(),
        "date_to": last.isoformat(),
        "queue": queue or None,
        "count": len(rows),
        "called_back": sum(1 for r in rows if r.called_back_at is not None),
        "rows": [_abandoned_json(r, state.zone) for r in rows],
    }


@router.get("/reports/abandoned", response_class=HTMLResponse)
def abandoned_page(
    request: Request,
    session: SessionDep,
    state: StateDep,
    date_from: DateText = None,
    date_to: DateText = None,
    queue: QueueParam = None,
    tenant: TenantParam = None,
) -> Response:
    first, last, rows = _abandoned(session, state.zone, date_from, date_to, queue, tenant)
    query = {"date_from": first.isoformat(), "date_to": last.isoformat(), "queue": queue or ""}
    return render(
        state.templates,
        request,
        "abandoned.html",
        {
            "search": None,
            "rows": [_abandoned_json(r, state.zone) for r in rows],
            "query": query,
            "queues": QUEUES,
            "called_back": sum(1 for r in rows if r.called_back_at is not None),
        },
        state.settings.default_language,
    )


@router.get("/reports/abandoned.csv")
def abandoned_csv(
    session: SessionDep,
    state: StateDep,
    date_from: DateText = None,
    date_to: DateText = None,
    queue: QueueParam = None,
    tenant: TenantParam = None,
) -> StreamingResponse:
    first, last, rows = _abandoned(session, state.zone, date_from, date_to, queue, tenant)

    def lines() -> Iterator[str]:
        yield from csv_export.encode_rows([ABANDONED_COLUMNS])
        for row in rows:
            data = _abandoned_json(row, state.zone)
            yield from csv_export.encode_rows(
                [[csv_export.safe_cell(data[column]) for column in ABANDONED_COLUMNS]]
            )

    name = f"abandoned-{first.isoformat()}-{last.isoformat()}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- staffing forecast -----------------------------------------------------------------------

WeeksParam = Annotated[int, Query(ge=1, le=staffing.MAX_WEEKS)]
SecondsParam = Annotated[float | None, Query(gt=0, le=3600)]
ServiceLevelParam = Annotated[str | None, Query(max_length=16)]
OccupancyParam = Annotated[float, Query(gt=0, le=1)]


@dataclass(frozen=True)
class Forecast:
    """The coming week's plan, as one request asked for it (query kept for the page's form)."""

    target: Target
    window: staffing.Window
    rows: list[staffing.ForecastRow]
    weeks: int
    query: dict[str, str | int]


def forecast(
    session: SessionDep,
    state: StateDep,
    weeks: WeeksParam = 4,
    target_asa: SecondsParam = None,
    target_sl: ServiceLevelParam = None,
    max_occupancy: OccupancyParam = 0.85,
    tenant: TenantParam = None,
) -> Forecast:
    """The staffing routes' one set of options → the forecast (behind the tenant wall)."""
    settings = state.settings
    try:
        target = target_from_options(
            target_asa,
            target_sl or None,
            max_occupancy,
            (settings.service_level_target, float(settings.service_level_seconds)),
        )
    except ErlangError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    tenant_wall.narrow(session, tenant or None)
    window, rows = staffing_store.week_forecast(
        session, datetime.now(UTC), weeks, state.zone, target, settings.wrapup_seconds
    )
    query: dict[str, str | int] = {
        "weeks": weeks,
        "target_asa": "" if target_asa is None else f"{target_asa:g}",
        "target_sl": target_sl or "",
        "max_occupancy": f"{max_occupancy:g}",
    }
    return Forecast(target, window, rows, weeks, query)


ForecastDep = Annotated[Forecast, Depends(forecast)]


def _target_json(target: Target) -> dict[str, Any]:
    return {
        "service_level": target.service_level,
        "answer_seconds": target.answer_seconds,
        "average_wait": target.average_wait,
        "max_occupancy": target.max_occupancy,
    }


@router.get("/api/staffing")
def staffing_api(plan: ForecastDep) -> dict[str, Any]:
    """Operators needed per quarter hour of the coming week (Erlang C, occupancy-capped) from
    the last `weeks` weeks, beside those logged in then. Same as `hotline staffing --json`."""
    target, window, rows = plan.target, plan.window, plan.rows
    return {
        "history": {"since": window.start.isoformat(), "until": window.end.isoformat()},
        "weeks": plan.weeks,
        "target": _target_json(target),
        "rows": [row.as_dict() for row in rows],
    }


@router.get("/staffing.csv")
def staffing_csv(plan: ForecastDep) -> StreamingResponse:
    window, rows = plan.window, plan.rows
    lines = ([str(cell) for cell in row] for row in staffing.csv_rows(rows))
    return StreamingResponse(
        csv_export.encode_rows(lines),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="staffing-{window.today}.csv"'},
    )


CHART_WIDTH, CHART_HEIGHT = 960, 220


def day_chart(rows: list[staffing.ForecastRow]) -> dict[str, Any]:
    """One day's needed (bars) and logged-in (line) per quarter hour, as SVG coordinates; the
    shortfall is drawn in its own colour. Pure: the template only places the shapes."""
    top = max([1.0, *(r.needed for r in rows), *(r.logged_in for r in rows)])
    step = CHART_WIDTH / max(1, len(rows))

    def y(value: float) -> float:
        return round(CHART_HEIGHT - value / top * (CHART_HEIGHT - 10), 1)

    bars, shortfalls, points = [], [], []
    for i, row in enumerate(rows):
        x = round(i * step, 1)
        if row.needed:
            bars.append({"x": x, "y": y(row.needed), "h": round(CHART_HEIGHT - y(row.needed), 1),
                         "title": f"{row.time}: {row.needed}"})  # fmt: skip
        if row.logged_in < row.needed:
            shortfalls.append({"x": x, "y": y(row.needed),
                               "h": round(y(row.logged_in) - y(row.needed), 1),
                               "title": f"{row.time}: {row.gap:+.1f}"})  # fmt: skip
        points.append(f"{round(x + step / 2, 1)},{y(row.logged_in)}")
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "bar_width": round(max(1.0, step - 1), 1),
        "top": top,
        "bars": bars,
        "shortfalls": shortfalls,
        "line": " ".join(points),
        "hours": [{"x": round(h * 4 * step, 1), "label": f"{h:02d}"} for h in range(0, 24, 3)],
    }


@router.get("/staffing", response_class=HTMLResponse)
def staffing_page(request: Request, state: StateDep, plan: ForecastDep) -> Response:
    target, window, rows = plan.target, plan.window, plan.rows
    days = []
    for offset in range(7):
        day = window.today + timedelta(days=offset)
        of_day = [r for r in rows if r.day == day]
        days.append(
            {
                "day": day.isoformat(),
                "weekday": day.weekday(),
                "chart": day_chart(of_day),
                "calls": round(sum(r.calls for r in of_day), 1),
                "peak": max((r.needed for r in of_day), default=0),
                "short": sum(1 for r in of_day if r.logged_in < r.needed),
                "rows": [r for r in of_day if r.needed or r.logged_in],
            }
        )
    query = plan.query
    return render(
        state.templates,
        request,
        "staffing.html",
        {
            "search": None,
            "days": days,
            "target": _target_json(target),
            # The last day read, not the (exclusive) end.
            "history": (
                window.start.astimezone(state.zone).date(),
                window.today - timedelta(days=1),
            ),
            "query": query,
        },
        state.settings.default_language,
    )


# --- agent sessions --------------------------------------------------------------------------


@dataclass(frozen=True)
class AgentReport:
    first: date
    last: date
    days: list[agent_sessions.AgentFigures]
    period: list[agent_sessions.AgentFigures]


def agent_report(
    session: SessionDep,
    state: StateDep,
    date_from: DateText = None,
    date_to: DateText = None,
    tenant: TenantParam = None,
) -> AgentReport:
    """The agent-session routes' one set of options → the report (behind the tenant wall)."""
    first, last = _days(state.zone, date_from or None, date_to or None)
    tenant_wall.narrow(session, tenant or None)
    per_day, period = agent_sessions_store.agent_report(
        session,
        first,
        last,
        state.zone,
        wrapup_seconds=state.settings.wrapup_seconds,
        now=datetime.now(UTC),
    )
    return AgentReport(first, last, agent_sessions.active(per_day), period)


AgentReportDep = Annotated[AgentReport, Depends(agent_report)]


@router.get("/api/reports/agents")
def agents_api(report: AgentReportDep) -> dict[str, Any]:
    """Each operator's log-ins, pauses (seconds per reason), ready / talk / callback / wrap-up
    seconds, calls answered and missed and occupancy, per local day (days with anything in
    them) and over date_from..date_to (default today). Same as `hotline reports agents --json`."""
    return {
        "date_from": report.first.isoformat(),
        "date_to": report.last.isoformat(),
        "period": [f.as_dict() for f in report.period],
        "days": [f.as_dict() for f in report.days],
    }


@router.get("/reports/agents.csv")
def agents_csv(report: AgentReportDep) -> StreamingResponse:
    rows = agent_sessions.csv_rows([*report.days, *report.period])
    name = f"agents-{report.first.isoformat()}-{report.last.isoformat()}.csv"
    return StreamingResponse(
        csv_export.encode_rows([csv_export.safe_cell(c) for c in row] for row in rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/reports/agents", response_class=HTMLResponse)
def agents_page(
    request: Request, state: StateDep, report: AgentReportDep, tenant: TenantParam = None
) -> Response:
    query = {"date_from": report.first.isoformat(), "date_to": report.last.isoformat()}
    if tenant:
        query["tenant"] = tenant
    return render(
        state.templates,
        request,
        "agents_report.html",
        {"search": None, "period": report.period, "days": report.days, "query": query},
        state.settings.default_language,
    )
