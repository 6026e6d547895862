"""Sign-in, roles, CSRF and API tokens through the real app (httpx + ASGI) on SQLite and
PostgreSQL. Routes are enumerated from the app itself: a route added later without a rule, or
with the wrong one, fails here."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from call_router import accounts
from call_router.db import Database
from call_router.models import Call
from call_router.operators import add_operator, parse_skills
from call_router.settings import Settings
from dashboard import auth
from dashboard.main import create_app
from tests.conftest import bearer_headers

BASE = "http://dashboard.test"
PASSWORD = "a long enough secret"
# Placeholder values for path parameters: auth answers before anything looks them up.
PATH_VALUES = {"login": "3201", "kind": "voicemail"}


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    # AMI and Redis on closed loopback ports: nothing here may reach a running hotline.
    return Settings(
        state_dir=tmp_path / "state",
        ami_port=1,
        redis_url="redis://127.0.0.1:1/0",
        **overrides,  # type: ignore[arg-type]
    )


@pytest.fixture
def app_db(database: Database) -> Database:
    with database.session() as session:
        add_operator(session, "Olga", parse_skills("heating"), login="3201")
        add_operator(session, "Pavel", parse_skills("heating"), login="3202")
        now = datetime.now(UTC)
        accounts.create_user(session, "sup", PASSWORD, "supervisor", now=now)
        accounts.create_user(session, "olga", PASSWORD, "operator", operator_login="3201", now=now)
    return database


@pytest.fixture
async def http(app_db: Database, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(_settings(tmp_path), app_db, zone=ZoneInfo("UTC"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield client


def _protected_requests() -> list[tuple[str, str, auth.Access]]:
    app = create_app(Settings(database_url="sqlite://"))
    found: list[tuple[str, str, auth.Access]] = []
    for info in auth.route_table(app):
        if info.framework or info.rule is auth.PUBLIC:
            continue
        assert info.rule is not None, f"{info.path} has no rule"
        path = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PATH_VALUES.get(m.group(1), "1"), info.path)
        found.extend((method, path, info.rule) for method in sorted(info.methods - {"HEAD"}))
    return found


PROTECTED = _protected_requests()


async def login_form_token(http: httpx.AsyncClient) -> str:
    """The login form's double-submit CSRF value (its cookie lands in the client's jar)."""
    form = await http.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text
    return csrf[1]


async def sign_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> str:
    """The real form: GET /login, POST it back; returns the session's CSRF token."""
    csrf = await login_form_token(http)
    response = await http.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf, "next": "/"},
    )
    assert response.status_code == 303, response.text
    page = await http.get("/calls")
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token, page.text
    return token[1]


def test_the_enumeration_covers_the_api_and_the_supervisor_pages() -> None:
    paths = {path for _method, path, _rule in PROTECTED}
    assert {"/api/calls", "/api/wallboard/stream", "/wallboard", "/reports", "/logout"} <= paths
    assert len([p for p in paths if p.startswith("/api/")]) >= 15


async def test_every_protected_route_refuses_a_request_without_credentials(
    http: httpx.AsyncClient,
) -> None:
    for method, path, _rule in PROTECTED:
        response = await http.request(method, path)
        if path.startswith("/api/") or path in auth.MACHINE_PATHS or method != "GET":
            assert response.status_code == 401, (method, path, response.text)
            if path.startswith("/api/") or path in auth.MACHINE_PATHS:
                assert response.headers["www-authenticate"].startswith("Bearer")
        else:
            assert response.status_code == 303, (method, path)
            assert response.headers["location"].startswith("/login?next=")


async def test_an_operator_gets_403_on_every_supervisor_route(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    operator = bearer_headers(app_db, role="operator")
    supervisor_only = [(m, p) for m, p, rule in PROTECTED if rule in auth.SUPERVISOR_RULES]
    assert ("GET", "/wallboard") in supervisor_only
    # Call control (issue 18): every action and its audit.
    assert {
        ("POST", "/api/calls/1/hangup"),
        ("POST", "/api/calls/1/move"),
        ("POST", "/api/calls/move"),
        ("POST", "/api/calls/1/monitor"),
        ("GET", "/api/control/audit"),
        ("GET", "/supervision/audit"),
    } <= set(supervisor_only)
    for method, path in supervisor_only:
        response = await http.request(method, path, headers=operator)
        assert response.status_code == 403, (method, path)
    mine = await http.get("/api/calls", headers=operator)
    assert mine.status_code == 200


async def test_the_healthz_and_login_pages_stay_open(http: httpx.AsyncClient) -> None:
    assert (await http.get("/healthz")).status_code == 200
    login = await http.get("/login?next=/wallboard")
    assert login.status_code == 200 and 'name="next" value="/wallboard"' in login.text


async def test_signing_in_sets_a_safe_session_cookie_and_signing_out_ends_it(
    http: httpx.AsyncClient,
) -> None:
    csrf = await login_form_token(http)
    response = await http.post(
        "/login",
        data={"username": "sup", "password": PASSWORD, "csrf_token": csrf, "next": "/reports"},
    )
    assert response.status_code == 303 and response.headers["location"] == "/reports"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("hotline_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # plain http here; see the https test

    me = (await http.get("/api/me")).json()
    assert me == {"name": "sup", "kind": "user", "role": "supervisor", "operator_login": None}
    page = await http.get("/calls")
    assert 'id="current-user"' in page.text and "sup" in page.text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token

    assert (await http.post("/logout")).status_code == 403, "sign-out needs the CSRF token"
    out = await http.post("/logout", data={"csrf_token": token[1]})
    assert out.status_code == 303 and out.headers["location"] == "/login"
    assert (await http.get("/api/me")).status_code == 401


async def test_a_wrong_password_is_refused_without_a_session(http: httpx.AsyncClient) -> None:
    csrf = await login_form_token(http)
    for username, password in [("sup", "wrong password"), ("nobody", PASSWORD)]:
        response = await http.post(
            "/login", data={"username": username, "password": password, "csrf_token": csrf}
        )
        assert response.status_code == 401
        assert 'id="login-error"' in response.text
        assert not any(
            c.startswith("hotline_session=") for c in response.headers.get_list("set-cookie")
        )
    assert (await http.get("/api/me")).status_code == 401


async def test_a_login_post_without_the_forms_cookie_is_refused(
    app_db: Database, tmp_path: Path
) -> None:
    # Login CSRF: a cross-site form cannot know (or set) the double-submit cookie.
    app = create_app(_settings(tmp_path), app_db, zone=ZoneInfo("UTC"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as fresh:
        response = await fresh.post(
            "/login", data={"username": "sup", "password": PASSWORD, "csrf_token": "guess"}
        )
    assert response.status_code == 400
    assert "hotline_session=" not in response.headers.get("set-cookie", "")


async def test_after_login_an_outside_next_url_is_ignored(http: httpx.AsyncClient) -> None:
    csrf = await login_form_token(http)
    response = await http.post(
        "/login",
        data={
            "username": "sup",
            "password": PASSWORD,
            "csrf_token": csrf,
            "next": "//evil.example/",
        },
    )
    assert response.status_code == 303 and response.headers["location"] == "/"


async def test_a_cookie_session_post_without_the_csrf_token_is_refused(
    http: httpx.AsyncClient,
) -> None:
    csrf = await sign_in(http, "sup")
    claim = {"operator": "3202"}

    refused = await http.post("/api/callbacks/999999/claim", json=claim)
    wrong = await http.post(
        "/api/callbacks/999999/claim", json=claim, headers={"X-CSRF-Token": csrf[:-2]}
    )
    # With the token the request reaches the route, which knows no such callback.
    passed = await http.post(
        "/api/callbacks/999999/claim", json=claim, headers={"X-CSRF-Token": csrf}
    )

    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert wrong.status_code == 403
    assert passed.status_code == 404


async def test_bearer_requests_need_no_csrf_token_and_a_revoked_token_is_401(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    with app_db.session() as session:
        token, row = accounts.create_token(
            session, "supervisor", name="integration", now=datetime.now(UTC)
        )
        token_id = row.id
    headers = {"Authorization": f"Bearer {token}"}

    claimed = await http.post(
        "/api/callbacks/999999/claim", json={"operator": "3201"}, headers=headers
    )
    assert claimed.status_code == 404
    assert (await http.get("/api/me", headers=headers)).json()["kind"] == "token"

    with app_db.session() as session:
        accounts.revoke_token(session, token_id, now=datetime.now(UTC))
    assert (await http.get("/api/calls", headers=headers)).status_code == 401
    # A malformed header is a failure too, never a fall back to anything else.
    assert (await http.get("/api/calls", headers={"Authorization": "Bearer"})).status_code == 401
    assert (
        await http.get("/api/calls", headers={"Authorization": "Basic eDp5"})
    ).status_code == 401


async def test_an_operator_acts_only_as_themself_and_cannot_open_supervisor_pages(
    http: httpx.AsyncClient,
) -> None:
    csrf = await sign_in(http, "olga")
    headers = {"X-CSRF-Token": csrf}

    me = (await http.get("/api/me")).json()
    as_other = await http.post(
        "/api/callbacks/999999/claim", json={"operator": "3202"}, headers=headers
    )
    as_self = await http.post(
        "/api/callbacks/999999/claim", json={"operator": "3201"}, headers=headers
    )
    other_agent = await http.post("/api/agents/3202/pause", json={"reason": "x"}, headers=headers)
    wallboard = await http.get("/wallboard")
    reports = await http.get("/reports")
    calls = await http.get("/calls")

    assert me["role"] == "operator" and me["operator_login"] == "3201"
    assert as_other.status_code == 403
    assert as_self.status_code == 404
    assert other_agent.status_code == 403
    assert wallboard.status_code == 403 and reports.status_code == 403
    assert calls.status_code == 200
    # Supervisor links are not offered to an operator.
    assert 'href="/wallboard"' not in calls.text


async def test_a_disabled_users_session_stops_working(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    await sign_in(http, "sup")
    assert (await http.get("/api/me")).status_code == 200
    with app_db.session() as session:
        accounts.set_active(session, "sup", False)
    assert (await http.get("/api/me")).status_code == 401
    assert (await http.get("/calls")).status_code == 303


async def test_behind_https_the_session_cookie_is_secure(app_db: Database, tmp_path: Path) -> None:
    app = create_app(_settings(tmp_path, dashboard_https=True), app_db, zone=ZoneInfo("UTC"))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://dashboard.test"
    ) as client:
        csrf = await login_form_token(client)
        response = await client.post(
            "/login", data={"username": "sup", "password": PASSWORD, "csrf_token": csrf}
        )
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("hotline_session=")
    )
    assert "Secure" in cookie


async def test_a_route_added_without_a_rule_is_denied_at_request_time(
    app_db: Database, tmp_path: Path
) -> None:
    app = create_app(_settings(tmp_path), app_db, zone=ZoneInfo("UTC"))

    @app.get("/api/added-later")
    def added_later() -> dict[str, str]:
        return {"secret": "data"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        response = await client.get("/api/added-later", headers=bearer_headers(app_db))
    assert response.status_code == 403
    assert "secret" not in response.text


async def test_an_operators_disposition_is_signed_with_their_roster_login(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    with app_db.session() as session:
        call = Call(
            started_at=datetime.now(UTC), caller_number="+74953330001", linkedid="auth-disp-1"
        )
        session.add(call)
        session.flush()
        call_id = call.id
    csrf = await sign_in(http, "olga")

    saved = await http.post(
        f"/api/calls/{call_id}/disposition",
        json={"category": "consultation"},
        headers={"X-CSRF-Token": csrf},
    )
    forged = await http.post(
        f"/api/calls/{call_id}/disposition",
        json={"category": "consultation", "operator": "3202"},
        headers={"X-CSRF-Token": csrf},
    )

    assert saved.status_code == 200, saved.text
    assert saved.json()["operator"] == "3201"
    assert forged.status_code == 403


async def test_the_api_description_is_for_signed_in_staff_only(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    paths = ("/openapi.json", "/docs", "/redoc")
    for path in paths:
        anonymous = await http.get(path)
        assert anonymous.status_code == 303, path
        assert anonymous.headers["location"].startswith("/login?next="), path
        assert "/api/" not in anonymous.text
        # A made-up or malformed credential is no better.
        bogus = await http.get(path, headers={"Authorization": "Bearer hlt_nothing"})
        assert bogus.status_code in (303, 401), path
    operator_token = bearer_headers(app_db, role="operator")
    described = await http.get("/openapi.json", headers=operator_token)
    assert described.status_code == 200
    assert "/api/calls" in described.json()["paths"]
    await sign_in(http, "olga")
    for path in paths:
        response = await http.get(path)
        if path == "/redoc":  # one viewer: /docs
            assert (response.status_code, response.headers["location"]) == (307, "/docs")
            continue
        assert response.status_code == 200, path


async def test_the_api_viewers_name_no_outside_host_and_their_assets_load(
    http: httpx.AsyncClient, app_db: Database
) -> None:
    assets = await http.get("/docs/assets/swagger-ui-bundle.js")
    assert assets.status_code == 303  # staff only, like the pages
    await sign_in(http, "olga")
    for path in ("/docs",):
        page = await http.get(path)
        assert page.status_code == 200, path
        # No other host, not even a protocol-relative one; no inline script.
        assert not re.search(r"(?i)(https?:)?//[a-z0-9]", page.text), (path, page.text)
        assert "<script>" not in page.text.replace(" ", "")
        referenced = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert any(ref.endswith(".js") for ref in referenced), (path, referenced)
        for ref in referenced:
            assert ref.startswith("/"), ref
            loaded = await http.get(ref)
            assert loaded.status_code == 200, ref
            assert len(loaded.content) > 1000 or ref.endswith("api-docs.js"), ref
    bundle = await http.get("/docs/assets/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in bundle.text and "javascript" in bundle.headers["content-type"]
    assert (await http.get("/docs/assets/..%2Fcore.py")).status_code == 404
    assert (await http.get("/docs/assets/core.py")).status_code == 404
