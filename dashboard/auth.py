"""Who may do what on the dashboard: principals, role rules and CSRF, in one place.

Credentials: a browser signs in at /login and gets a session cookie (HttpOnly, SameSite=Lax,
Secure behind https; the session row lives in the database, so several dashboard processes
share it); an integration or an unattended screen sends `Authorization: Bearer TOKEN`
(`hotline tokens create`). Tokens are never accepted in a URL: URLs end up in logs and history.

The access rules, declared per router where dashboard/main.py includes it:

    public      /healthz, /login (GET, POST), /static
    staff       supervisors and operators: the API's description (/openapi.json, /docs,
                /redoc), today's calls, the call log, call detail and its
                audio, the operator page, the callback list pages, the calls API,
                dispositions, meter readings, callbacks list/claim/call/outcome, agents API,
                /api/me, /logout (a tenant's account: its tenant's rows, call_router/tenant_wall.py)
    supervisor  wallboard (page, snapshot, live stream), reports (a tenant's supervisor: its
                own tenant's figures, call_router/tenant_wall.py)
    centre supervisor  incidents, flows, accounts, API tokens and tenants (/admin/...),
                security: the centre's supervisors only, never a tenant's account
    signed in   every role (also dispatcher, crew): /logout, /api/me
    requests    supervisor, operator, dispatcher, crew: /api/requests, /api/crews (who may do
                which action is decided per route: dashboard/routes/request_access.py)
    public      also /open311/v2/... (Open311 clients; POST checks its own API key)
    supervisor  also call control (/api/calls/{id}/hangup|move|monitor, /api/calls/move) and
                its audit (/api/control/audit, /supervision/audit), behind the tenant wall
    supervisor  also /metrics (a machine's path: 401, not a redirect to /login), the abandoned
                callers and staffing reports (behind the tenant wall)
    centre staff  the centre's operators and supervisors, never a tenant's account: placing a
                call that arrived unknown with its company (/api/calls/{id}/tenant, the
                screen-pop's form)

An operator acts only as themself. Who acts is decided inside each route from the principal
(`dashboard.deps.ActorDep`), never by reading the request here: a rule that parses the body
for a name sees a different body than the route does (another content type, a missing field).
A named operator (`{login}` in the path of /api/agents/..., `"operator"` in the body of
callbacks or dispositions) that is not the account's own is 403, and naming nobody acts as
the account's own login (an operator-role API token is linked to nobody, so it cannot do what
acts as an operator). Supervisors and supervisor tokens may act for anyone; the history then
records the supervisor (`by`) beside the operator acted for.

CSRF: a cookie is an ambient credential, so every POST/PUT/PATCH/DELETE authenticated by the
session cookie must carry the session's CSRF token, as the form field `csrf_token` or the
`X-CSRF-Token` header (pages put it in `<meta name="csrf-token">` for scripts). Bearer requests
are exempt: a browser never adds that header on its own. The login form itself uses a
double-submit cookie (there is no session yet).

Deny unless declared: `check_routes` (run by create_app) refuses to start an app with a route
that has no rule, so a router included without one fails every test at once; and an app-wide
dependency answers 403 for a route added later without one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, pass_context

from call_router import accounts
from call_router.accounts import CREW, DISPATCHER, OPERATOR, ROLES, SUPERVISOR, Principal
from call_router.db import Database
from dashboard.deps import SESSION_COOKIE, NotAuthenticated, OptionalPrincipal

LOGIN_CSRF_COOKIE = "hotline_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _csrf_ok(request: Request, expected: str | None, form_value: Any) -> bool:
    given = request.headers.get(CSRF_HEADER)
    if given is None and isinstance(form_value, str):
        given = form_value
    return accounts.same_secret(expected, given)


async def _form_field(request: Request, name: str) -> Any:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    form = await request.form()
    return form.get(name)


class Access:
    """One access rule; `Depends(rule)` at include_router. Public rules check nothing."""

    def __init__(self, name: str, roles: Iterable[str], *, tenant_accounts: bool = True) -> None:
        self.name = name
        self.roles = frozenset(roles)
        # False: refused to a tenant's account or token (call_router/tenant_wall.py), for pages
        # that are the centre's by nature (administration, flows, incidents, security).
        self.tenant_accounts = tenant_accounts

    def __repr__(self) -> str:
        return f"Access({self.name})"

    async def __call__(self, request: Request, principal: OptionalPrincipal) -> None:
        if not self.roles:
            return
        if principal is None:
            raise NotAuthenticated()
        if principal.role not in self.roles:
            raise HTTPException(403, detail="your role may not open this")
        if principal.tenant_id is not None and not self.tenant_accounts:
            raise HTTPException(403, detail="only the centre's staff may open this")
        if principal.csrf_token is not None and request.method not in SAFE_METHODS:
            form_value = await _form_field(request, CSRF_FIELD)
            if not _csrf_ok(request, principal.csrf_token, form_value):
                raise HTTPException(403, detail="missing or wrong CSRF token")


PUBLIC = Access("public", ())
STAFF = Access("staff", (SUPERVISOR, OPERATOR))
# Every signed-in role: signing out, /api/me.
SIGNED_IN = Access("signed in", ROLES)
# Service requests (dashboard/routes/request_access.py decides per action who may do what).
REQUESTS = Access("requests", (SUPERVISOR, OPERATOR, DISPATCHER, CREW))
# Supervisors: the centre's, and a tenant's behind its wall (the wallboard, reports: every
# figure is read through call_router/tenant_wall.py, so a tenant's supervisor gets its own).
SUPERVISOR_ONLY = Access("supervisor", (SUPERVISOR,))
# The centre's supervisors only: what is the centre's by nature, not a tenant's data
# (accounts, tokens and tenants administration, voice menus, incidents, security).
CENTRE_SUPERVISOR = Access("centre supervisor", (SUPERVISOR,), tenant_accounts=False)
# The centre's operators and supervisors (its coordinators), never a tenant's account: what
# decides between tenants (placing an unknown call with its company).
CENTRE_STAFF = Access("centre staff", (SUPERVISOR, OPERATOR), tenant_accounts=False)
# Every rule a role other than supervisor is refused.
SUPERVISOR_RULES = (SUPERVISOR_ONLY, CENTRE_SUPERVISOR)


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    rule: Access | None
    # A route that is not an API route (a static mount, FastAPI's docs).
    framework: bool
    original: object


def route_table(app: FastAPI) -> list[RouteInfo]:
    """Every route the app serves with its access rule; tests enumerate it too."""
    try:  # FastAPI >= 0.16x keeps included routers lazily; this flattens them.
        from fastapi.routing import iter_route_contexts
    except ImportError:  # pragma: no cover - older FastAPI: app.routes is already flat
        contexts: list[Any] = list(app.routes)
    else:
        contexts = list(iter_route_contexts(app.routes))
    table = []
    for ctx in contexts:
        original = getattr(ctx, "original_route", ctx)
        is_api = isinstance(original, APIRoute)
        deps = (getattr(ctx, "dependencies", None) or []) if is_api else []
        rules = [dep.dependency for dep in deps if isinstance(dep.dependency, Access)]
        table.append(
            RouteInfo(
                path=str(getattr(ctx, "path", "") or getattr(original, "path", "")),
                methods=frozenset(getattr(ctx, "methods", None) or ()),
                rule=rules[0] if len(rules) == 1 else None,
                framework=not is_api,
                original=original,
            )
        )
    return table


class DeclaredRoutes:
    """The routes that declare an access rule, for the request-time check below. Rebuilt when
    an unknown route shows up, so a route added after start-up is judged too."""

    def __init__(self) -> None:
        self._ids: frozenset[int] = frozenset()

    def covers(self, app: FastAPI, route: object) -> bool:
        if id(route) not in self._ids:
            self._ids = frozenset(
                id(info.original) for info in route_table(app) if info.rule is not None
            )
        return id(route) in self._ids


def enforce_declared(request: Request) -> None:
    """App-wide dependency: a route without a declared rule answers 403, whoever asks (the
    start-up check catches it first; this also covers routes added later)."""
    route = request.scope.get("route")
    declared: DeclaredRoutes = request.app.state.declared_routes
    if route is not None and not declared.covers(request.app, route):
        raise HTTPException(403, detail="this route declares no access rule")


def check_routes(app: FastAPI) -> None:
    """Refuse to build an app with a route that declares no access rule (or several)."""
    missing = [
        f"{sorted(info.methods)} {info.path}"
        for info in route_table(app)
        if info.rule is None and not (info.framework and info.path == "/static")
    ]
    if missing:
        raise RuntimeError(
            "routes without an access rule (include their router with "
            "dependencies=[Depends(PUBLIC | STAFF | SUPERVISOR_ONLY | CENTRE_SUPERVISOR)]): "
            + ", ".join(missing)
        )


# Read by machines, not people: a missing credential is a 401, never a redirect to /login.
MACHINE_PATHS = frozenset({"/metrics"})


def _wants_page(request: Request) -> bool:
    path = request.url.path
    return (
        not path.startswith("/api/")
        and path not in MACHINE_PATHS
        and request.method in SAFE_METHODS
    )


def not_authenticated_response(request: Request, _exc: Exception) -> Response:
    if _wants_page(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = request.app.url_path_for("login_page")
        return RedirectResponse(f"{login}?next={_quote(target)}", status_code=303)
    response = JSONResponse({"detail": "sign in or send Authorization: Bearer"}, status_code=401)
    response.headers["WWW-Authenticate"] = 'Bearer realm="hotline"'
    return response


def _quote(path: str) -> str:
    from urllib.parse import quote

    return quote(path, safe="/")


def safe_next(target: str | None) -> str:
    """Only a path on this site: never `//host` or `https://...` (an open redirect)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def install(app: FastAPI) -> None:
    """Call on the app before including routers (the app-wide check must see them all)."""
    app.add_exception_handler(NotAuthenticated, not_authenticated_response)
    app.state.declared_routes = DeclaredRoutes()
    app.router.dependencies.append(Depends(enforce_declared))


def install_template_globals(env: Environment) -> None:
    """`current_user()` (a Principal or None) and `csrf_token()` for every template."""

    def _principal(ctx: Any) -> Principal | None:
        request = ctx.get("request")
        return getattr(request.state, "principal", None) if request is not None else None

    @pass_context
    def current_user(ctx: Any) -> Principal | None:
        return _principal(ctx)

    @pass_context
    def csrf_token(ctx: Any) -> str:
        principal = _principal(ctx)
        return (principal.csrf_token or "") if principal is not None else ""

    env.globals.update(current_user=current_user, csrf_token=csrf_token, csrf_field=CSRF_FIELD)


def still_admitted(request: Request, db: Database) -> bool:
    """Whether the credential that admitted `request` still stands for the same principal:
    its session not signed out or expired, the account active and unchanged, its token not
    revoked. For responses that outlive their request (SSE streams, dashboard/live.py).
    Sync (one indexed read): run it in the thread pool."""
    admitted: Principal | None = getattr(request.state, "principal", None)
    if admitted is None:
        return True  # a public route: nobody was admitted, nothing to re-check
    now = datetime.now(UTC)
    with db.session() as session:
        if admitted.kind == "token":
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            fresh = (
                accounts.token_principal(session, token.strip(), now=now)
                if scheme.lower() == "bearer"
                else None
            )
        else:
            cookie = request.cookies.get(SESSION_COOKIE) or ""
            fresh = accounts.session_principal(session, cookie, now=now)
    return fresh == admitted
