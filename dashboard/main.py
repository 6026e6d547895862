"""The dashboard app: `create_app` wires settings, the database, templates and routers."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import uvicorn
from fastapi import Depends, FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from jinja2 import Environment, FileSystemLoader, StrictUndefined, pass_context
from starlette.datastructures import URL
from uvicorn.protocols.http.auto import AutoHTTPProtocol

from call_router import live_state
from call_router.ami_client import AmiLink
from call_router.db import Database
from call_router.log_setup import configure_logging
from call_router.settings import Settings
from dashboard import auth, i18n, live
from dashboard.deps import DashboardState, tenant_wall
from dashboard.live_hub import LiveHub
from dashboard.routes import (
    admin_pages,
    analytics,
    api_agents,
    api_callbacks,
    api_calls,
    api_control,
    api_dispositions,
    api_docs,
    api_meters,
    api_request_moves,
    api_requests,
    audio,
    call_company,
    callback_pages,
    flow_pages,
    health,
    incident_pages,
    login,
    meter_pages,
    metrics,
    open311,
    operator_pages,
    pages,
    reports,
    request_files,
    request_pages,
    request_reports,
    security_pages,
    tenant_pages,
    wallboard,
)
from dashboard.routes.schemas import iso_utc
from dashboard.upload_limit import FORM_OVERHEAD, UploadLimit

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


# Route paths remembered per app (see path_cache); cleared when full, the navigation refills it.
URL_CACHE_SIZE = 4096


def path_cache() -> Callable[..., URL]:
    """`url_for` for templates that remembers each (route, parameters) -> path.

    Starlette finds a route by trying every route in turn (~50 us here), and a page asks for
    dozens: the navigation on every page, one link per call-log row. Templates only use
    `.path`, so a relative URL is returned; the request's root_path is part of the key.
    """
    paths: dict[tuple[str, str, tuple[tuple[str, Any], ...]], str] = {}

    @pass_context
    def url_for(context: Any, name: str, /, **path_params: Any) -> URL:
        request: Request = context["request"]
        key = (request.scope.get("root_path", ""), name, tuple(sorted(path_params.items())))
        path = paths.get(key)
        if path is None:
            path = request.url_for(name, **path_params).path
            if len(paths) >= URL_CACHE_SIZE:
                paths.clear()
            paths[key] = path
        return URL(path)

    return url_for


def make_templates(zone: ZoneInfo) -> Jinja2Templates:
    # Autoescape everything: caller names and numbers come from the carrier, i.e. from anyone.
    # auto_reload off: templates do not change under a running server, and checking every
    # template file's mtime on every render is a system call per template per page.
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        auto_reload=False,
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
    # Jinja2Templates keeps a url_for already there (it only sets a default).
    env.globals["url_for"] = path_cache()
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
    # Claims and outcomes made here reach the other operators' callback pages live.
    live_state.publish_callback_changes(database, settings.redis_url, settings.redis_prefix)
    zone = zone or (ZoneInfo(settings.timezone) if settings.timezone else system_zone())
    # One Redis client per process (its pool connects lazily, inside the serving loop).
    hub = LiveHub(live.connect(settings), live.event_channels(settings))
    # One AMI link per process for every agent and call-control action (connects lazily,
    # inside the serving loop; reconnects after a loss).
    ami = AmiLink(settings, "supervise")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await hub.close()
        await ami.close()
        if owns_db:
            database.dispose()

    # FastAPI's public docs off: dashboard/routes/api_docs.py serves them to staff only.
    app = FastAPI(
        title="Hotline dashboard",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        # Before any route's own work: the principal's tenant wall (call_router/tenant_wall.py).
        dependencies=[Depends(tenant_wall)],
    )
    app.state.dashboard = DashboardState(
        settings=settings, db=database, templates=make_templates(zone), zone=zone, live=hub, ami=ami
    )
    ami.listen("DTMFEnd", app.state.dashboard.spy_modes.on_dtmf)

    @app.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    # Uploads (request attachments) are capped before any form is read.
    app.add_middleware(UploadLimit, max_bytes=settings.attachment_max_bytes + FORM_OVERHEAD)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # Every router declares who may use it (rules: dashboard/auth.py); check_routes below
    # refuses to start if one does not.
    auth.install(app)
    public, staff, supervisor, centre_supervisor = (
        [Depends(auth.PUBLIC)],
        [Depends(auth.STAFF)],
        [Depends(auth.SUPERVISOR_ONLY)],
        [Depends(auth.CENTRE_SUPERVISOR)],
    )
    app.include_router(health.router, dependencies=public)
    app.include_router(login.public_router, dependencies=public)
    app.include_router(login.router, dependencies=[Depends(auth.SIGNED_IN)])
    app.include_router(api_docs.router, dependencies=staff)
    # Before api_calls: its routes are more specific (/api/calls/move, /{id}/hangup ...).
    app.include_router(api_control.router, dependencies=supervisor)
    app.include_router(api_control.pages, dependencies=supervisor)
    # Before api_calls: a coordinator places an unknown call with its company (centre only).
    app.include_router(call_company.router, dependencies=[Depends(auth.CENTRE_STAFF)])
    app.include_router(call_company.pages, dependencies=[Depends(auth.CENTRE_STAFF)])
    app.include_router(api_calls.router, dependencies=staff)
    app.include_router(api_callbacks.router, dependencies=staff)
    app.include_router(api_requests.router, dependencies=[Depends(auth.REQUESTS)])
    app.include_router(api_request_moves.router, dependencies=[Depends(auth.REQUESTS)])
    app.include_router(request_files.router, dependencies=[Depends(auth.REQUESTS)])
    app.include_router(request_reports.router, dependencies=[Depends(auth.REQUESTS)])
    app.include_router(request_reports.pages, dependencies=[Depends(auth.REQUESTS)])
    # Open311 clients: public reads, an Open311 API key for POST (checked in the router).
    app.include_router(open311.router, dependencies=public)
    app.include_router(request_pages.router, dependencies=[Depends(auth.REQUESTS)])
    app.include_router(api_agents.router, dependencies=staff)
    app.include_router(api_agents.supervised, dependencies=supervisor)
    app.include_router(api_dispositions.router, dependencies=staff)
    app.include_router(api_meters.router, dependencies=staff)
    app.include_router(pages.router, dependencies=staff)
    app.include_router(audio.router, dependencies=staff)
    app.include_router(operator_pages.router, dependencies=staff)
    app.include_router(callback_pages.router, dependencies=staff)
    app.include_router(wallboard.router, dependencies=supervisor)
    app.include_router(reports.router, dependencies=supervisor)
    app.include_router(incident_pages.router, dependencies=centre_supervisor)
    app.include_router(flow_pages.router, dependencies=centre_supervisor)
    app.include_router(admin_pages.router, dependencies=centre_supervisor)
    app.include_router(security_pages.router, dependencies=centre_supervisor)
    app.include_router(tenant_pages.router, dependencies=centre_supervisor)
    # Abandoned callers and staffing: behind the tenant wall, so a tenant's supervisor too.
    app.include_router(analytics.router, dependencies=supervisor)
    app.include_router(meter_pages.router, dependencies=supervisor)
    # Prometheus scrapes with a supervisor token; the centre's figures only.
    app.include_router(metrics.router, dependencies=centre_supervisor)
    auth.check_routes(app)
    return app


def worker_app() -> FastAPI:
    """The app as uvicorn builds it in each worker process: Settings from the same HOTLINE_*
    environment the parent was started with; logging as every Hotline process logs (a fresh
    interpreter: the CLI's set-up did not run in it)."""
    settings = Settings()
    configure_logging(settings)
    return create_app(settings)


APP_FACTORY = "dashboard.main:worker_app"
# Live streams (wallboard, operator page) never end on their own: on SIGTERM give them this long,
# then close them, so a worker exits before `hotline down` would have to kill it.
GRACEFUL_SHUTDOWN_SECONDS = 5
# uvicorn kills a worker that is not up (imports, app built) or does not answer its parent's
# ping within this; its default 5 s restarted workers for ever on a busy two-core machine.
WORKER_HEALTHCHECK_SECONDS = 30


class NoDelayHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol with TCP_NODELAY on every connection.

    With several workers uvicorn binds the listening socket itself with `proto` 0, so asyncio
    does not turn Nagle's algorithm off on accepted connections (uvicorn issue #3149): every
    keep-alive response then waits ~40 ms for the client's delayed ACK.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """`uvicorn.run` arguments for these settings.

    One worker serves the app built here. Several workers need the app as an import string:
    uvicorn's parent process binds the socket and each worker builds its own app, with its own
    database pool. Nothing the app keeps in memory has to be shared between workers: sign-ins,
    tokens, CSRF secrets and callbacks live in the database, live state in Redis, and each
    live stream (SSE) subscribes to Redis itself and keeps its own state (see wallboard.py);
    each process shares its wallboard picture among its own screens (dashboard/live_hub.py).
    """
    options: dict[str, Any] = {
        "host": settings.dashboard_host,
        "port": settings.dashboard_port,
        "log_level": "info",
        "http": NoDelayHTTPProtocol,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN_SECONDS,
        # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: behind a local
        # proxy every browser would share one address (one guesser locks all out), and without
        # one any local client could claim any address. Only the configured proxies are trusted.
        "proxy_headers": bool(settings.forwarded_allow_ips),
        "forwarded_allow_ips": settings.forwarded_allow_ips or [],
    }
    if settings.dashboard_workers > 1:
        workers = settings.dashboard_workers
        return {
            "app": APP_FACTORY,
            "factory": True,
            "workers": workers,
            "timeout_worker_healthcheck": WORKER_HEALTHCHECK_SECONDS,
            **options,
        }
    return {"app": create_app(settings), **options}


def main() -> None:
    # Every page and API needs a sign-in (dashboard/auth.py). Still 127.0.0.1 by default:
    # publish it through an https proxy (and set HOTLINE_DASHBOARD_HTTPS=true for Secure cookies).
    settings = Settings()
    # The secrets (device-cookie key) are made here, before the workers start: workers that
    # each created a missing key would disagree.
    settings.secrets  # noqa: B018
    uvicorn.run(**uvicorn_options(settings))


if __name__ == "__main__":
    main()
