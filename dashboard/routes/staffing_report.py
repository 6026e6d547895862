"""The staffing forecast's routes (issue 15): operators needed per quarter hour next week.

GET /api/staffing            JSON: operators needed per quarter hour of the coming week
GET /staffing                the same as a page with an inline SVG chart per day
GET /staffing.csv            the same as CSV
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from call_router import staffing, staffing_store, tenant_wall
from call_router.erlang import ErlangError, Target, target_from_options
from dashboard import csv_export
from dashboard.deps import SessionDep, StateDep
from dashboard.i18n import render
from dashboard.routes.analytics_params import TenantParam

router = APIRouter()

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


@router.get("/api/staffing")
def staffing_api(plan: ForecastDep) -> dict[str, Any]:
    """Operators needed per quarter hour of the coming week (Erlang C, occupancy-capped) from
    the last `weeks` weeks, beside those logged in then. Same as `hotline staffing --json`."""
    return staffing.plan_json(plan.window, plan.target, plan.rows)


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
            "target": target.as_dict(),
            # The last day read, not the (exclusive) end.
            "history": (
                window.start.astimezone(state.zone).date(),
                window.today - timedelta(days=1),
            ),
            "query": query,
        },
        state.settings.default_language,
    )
