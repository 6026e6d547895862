"""The month's meter readings for supervisors, as billing will get them
(call_router/payer_accounts.py month_readings; `hotline meters export` prints the same CSV).

Read behind the tenant wall: a tenant's supervisor sees the readings of its payer accounts
and of its calls. Rule: `auth.SUPERVISOR_ONLY` (dashboard/main.py).

    GET /meters                      the page (?month=YYYY-MM, default this month)
    GET /meters.csv                  the same as CSV, formula-safe
    GET /api/meter-readings/month    the same as JSON
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from sqlalchemy.orm import Session

from call_router import payer_accounts, tenant_wall
from dashboard import csv_export
from dashboard.deps import SessionDep, StateDep
from dashboard.i18n import render

router = APIRouter(tags=["meters"])

MonthParam = Annotated[str | None, Query(max_length=7)]
TenantParam = Annotated[str | None, Query(max_length=32)]


def _month(value: str | None, today: date) -> date:
    if not value:
        return today.replace(day=1)
    try:
        return payer_accounts.parse_month(value)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc


def _readings(
    session: Session, state: Any, month: str | None, tenant: str | None
) -> tuple[date, list[payer_accounts.ExportRow]]:
    first = _month(month, datetime.now(state.zone).date())
    tenant_wall.narrow(session, tenant or None)
    return first, payer_accounts.month_readings(session, first, state.zone)


@router.get("/api/meter-readings/month")
def month_api(
    session: SessionDep, state: StateDep, month: MonthParam = None, tenant: TenantParam = None
) -> dict[str, Any]:
    """Each meter's current reading phoned in (or entered) during the local month."""
    first, rows = _readings(session, state, month, tenant)
    return {"month": first.strftime("%Y-%m"), "rows": [asdict(r) for r in rows]}


@router.get("/meters", response_class=HTMLResponse)
def meters_page(
    request: Request,
    session: SessionDep,
    state: StateDep,
    month: MonthParam = None,
    tenant: TenantParam = None,
) -> Response:
    first, rows = _readings(session, state, month, tenant)
    return render(
        state.templates,
        request,
        "meters.html",
        {"search": None, "rows": rows, "month": first.strftime("%Y-%m")},
        state.settings.default_language,
    )


@router.get("/meters.csv")
def meters_csv(
    session: SessionDep, state: StateDep, month: MonthParam = None, tenant: TenantParam = None
) -> StreamingResponse:
    first, rows = _readings(session, state, month, tenant)

    def lines() -> Iterator[str]:
        yield from csv_export.encode_rows([payer_accounts.EXPORT_HEADER])
        yield from csv_export.encode_rows(payer_accounts.csv_row(r) for r in rows)

    name = f"meter-readings-{first.strftime('%Y-%m')}.csv"
    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
