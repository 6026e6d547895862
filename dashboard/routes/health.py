"""`/healthz`: the process answers and the database does too (`hotline up` waits on it), plus
each other dependency's state (call_router/health.py) as "ok" / "down". Only the database makes
it 503: the dashboard works without the rest. The reasons go to the log and to `hotline status`,
not to an unauthenticated HTTP client."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from call_router import health
from call_router.settings import Settings
from dashboard.deps import DatabaseDep, SettingsDep
from dashboard.routes.schemas import HealthOut

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


# HEAD answers as GET does (load balancers probe with it); one operation in the API description.
@router.head("/healthz", include_in_schema=False, response_model=None)
@router.get("/healthz", response_model=HealthOut, responses={503: {"model": HealthOut}})
def healthz(request: Request, db: DatabaseDep, settings: SettingsDep) -> HealthOut | JSONResponse:
    dependencies = dependency_states(request, settings)
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        log.warning("health check: database unreachable", exc_info=True)
        down = HealthOut(
            status="database unreachable", dependencies={"database": "down", **dependencies}
        )
        return JSONResponse(status_code=503, content=down.model_dump())
    return HealthOut(status="ok", dependencies={"database": "ok", **dependencies})


# Readiness polls (`hotline up`, container health checks) come often: the other dependencies are
# checked at most this often per process (each check opens a connection).
CHECK_EVERY_SECONDS = 5.0


@dataclass(frozen=True)
class _Checked:
    at: float
    dependencies: dict[str, str]


def dependency_states(request: Request, settings: Settings) -> dict[str, str]:
    """Each dependency "ok" or "down", checked at most every CHECK_EVERY_SECONDS (shared with
    /metrics)."""
    cached: _Checked | None = getattr(request.app.state, "health_checked", None)
    now = time.monotonic()
    if cached is not None and now - cached.at < CHECK_EVERY_SECONDS:
        return cached.dependencies
    checks = [
        health.check_asterisk(settings),
        *health.router_checks(health.read_router_health(health.router_health_path(settings))),
        health.check_redis(settings),
        health.check_fastagi(settings),
    ]
    for check in checks:
        if not check.ok:
            log.warning("health check: %s down: %s", check.name, check.detail)
    dependencies = {c.name: "ok" if c.ok else "down" for c in checks}
    request.app.state.health_checked = _Checked(now, dependencies)
    return dependencies
