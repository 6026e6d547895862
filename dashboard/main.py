"""The dashboard app: `create_app` wires settings, the database, templates and routers."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import uvicorn
from fastapi import Depends, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from call_router.db import Database
from call_router.settings import Settings
from dashboard import auth, i18n
from dashboard.deps import DashboardState
from dashboard.routes import (
    api_agents,
    api_callbacks,
    api_calls,
    api_dispositions,
    api_meters,
    audio,
    callback_pages,
    flow_pages,
    health,
    incident_pages,
    login,
    operator_pages,
    pages,
    reports,
    wallboard,
)
from dashboard.routes.schemas import iso_utc

HERE = Path(__file__).resolve().parent

# No inline script or style anywhere: a caller name that slipped past escaping still cannot run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
        "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def system_zone() -> ZoneInfo:
    """The machine's time zone (`TZ`, else /etc/localtime), UTC when unknown.

    "Today" on the dashboard is the hotline's local day; in Docker set `TZ`.
    """
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            name = os.readlink("/etc/localtime").split("zoneinfo/", 1)[1]
        except (OSError, IndexError):
            name = "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_duration(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    minutes, secs = divmod(max(0, seconds), 60)
    return f"{minutes}:{secs:02d}"


def make_templates(zone: ZoneInfo) -> Jinja2Templates:
    # Autoescape everything: caller names and numbers come from the carrier, i.e. from anyone.
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"), autoescape=True, undefined=StrictUndefined
    )

    def local(dt: datetime | None, fmt: str = "%H:%M:%S") -> str:
        return dt.astimezone(zone).strftime(fmt) if dt is not None else "—"

    env.filters["local"] = local
    env.filters["iso_utc"] = lambda dt: iso_utc(dt) if dt is not None else ""
    env.filters["duration"] = format_duration
    # UI texts (ru/en) for every template, including pages rendered without dashboard.i18n.render.
    i18n.install(env)
    auth.install_template_globals(env)
    audio.install(env)
    return Jinja2Templates(env=env)


def create_app(
    settings: Settings | None = None,
    db: Database | None = None,
    *,
    zone: ZoneInfo | None = None,
) -> FastAPI:
    settings = settings or Settings()
    owns_db = db is None
    database = db or Database(settings.db_url)
    zone = zone or (ZoneInfo(settings.timezone) if settings.timezone else system_zone())

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_db:
            database.dispose()

    app = FastAPI(title="Hotline dashboard", lifespan=lifespan)
    app.state.dashboard = DashboardState(
        settings=settings, db=database, templates=make_templates(zone), zone=zone
    )

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # Every router declares who may use it (rules: dashboard/auth.py); check_routes below
    # refuses to start if one does not.
    auth.install(app)
    public, staff, supervisor = (
        [Depends(auth.PUBLIC)],
        [Depends(auth.STAFF)],
        [Depends(auth.SUPERVISOR_ONLY)],
    )
    app.include_router(health.router, dependencies=public)
    app.include_router(login.public_router, dependencies=public)
    app.include_router(login.router, dependencies=staff)
    app.include_router(api_calls.router, dependencies=staff)
    app.include_router(api_callbacks.router, dependencies=staff)
    app.include_router(api_agents.router, dependencies=staff)
    app.include_router(api_dispositions.router, dependencies=staff)
    app.include_router(api_meters.router, dependencies=staff)
    app.include_router(pages.router, dependencies=staff)
    app.include_router(audio.router, dependencies=staff)
    app.include_router(operator_pages.router, dependencies=staff)
    app.include_router(callback_pages.router, dependencies=staff)
    app.include_router(wallboard.router, dependencies=supervisor)
    app.include_router(reports.router, dependencies=supervisor)
    app.include_router(incident_pages.router, dependencies=supervisor)
    app.include_router(flow_pages.router, dependencies=supervisor)
    auth.check_routes(app)
    return app


def main() -> None:
    settings = Settings()
    # Every page and API needs a sign-in (dashboard/auth.py). Still 127.0.0.1 by default:
    # publish it through an https proxy (and set HOTLINE_DASHBOARD_HTTPS=true for Secure cookies).
    uvicorn.run(
        create_app(settings),
        host=settings.dashboard_host,
        port=settings.dashboard_port,
        log_level="info",
    )


if __name__ == "__main__":
    main()
