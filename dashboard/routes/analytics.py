"""Supervisor analytics (issue 15): the abandoned-callers list, the staffing forecast and the
agent-session report, one router over the three.

Every figure is read through ORM statements behind the tenant wall (call_router/tenant_wall.py),
so a tenant's supervisor sees their own company's callers, forecast and operators (`?tenant=`
narrows the centre's view). Rule: `auth.SUPERVISOR_ONLY` (dashboard/main.py).

    /api/reports/abandoned, /reports/abandoned(.csv)   dashboard/routes/abandoned_report.py
    /api/staffing, /staffing(.csv)                     dashboard/routes/staffing_report.py
    /api/reports/agents, /reports/agents(.csv)         dashboard/routes/agents_report.py
"""

from __future__ import annotations

from fastapi import APIRouter

from dashboard.routes import abandoned_report, agents_report, staffing_report

router = APIRouter(tags=["analytics"])
for part in (abandoned_report, staffing_report, agents_report):
    router.include_router(part.router)
