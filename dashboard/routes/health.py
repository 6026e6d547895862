"""`/healthz`: the process answers and the database does too (`hotline up` waits on it)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from dashboard.deps import DatabaseDep
from dashboard.routes.schemas import HealthOut

router = APIRouter(tags=["health"])
log = logging.getLogger(__name__)


@router.api_route(
    "/healthz",
    methods=["GET", "HEAD"],
    response_model=HealthOut,
    responses={503: {"model": HealthOut}},
)
def healthz(db: DatabaseDep) -> HealthOut | JSONResponse:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError:
        # The reason goes to the log, not to an unauthenticated HTTP client.
        log.warning("health check: database unreachable", exc_info=True)
        return JSONResponse(status_code=503, content={"status": "database unreachable"})
    return HealthOut(status="ok")
