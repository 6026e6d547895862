"""The agent-session report's routes (issue 15): each operator's log-ins, pauses, calls, occupancy.

GET /api/reports/agents      JSON: each operator's sessions per day and over the period
GET /reports/agents          the same as a printable page
GET /reports/agents.csv      the same as CSV
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from call_router import agent_sessions, agent_sessions_store, tenant_wall
from dashboard import csv_export
from dashboard.deps import SessionDep, StateDep
from dashboard.i18n import render
from dashboard.routes.analytics_params import DateText, TenantParam, local_days

router = APIRouter()


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
    first, last = local_days(state.zone, date_from or None, date_to or None)
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
