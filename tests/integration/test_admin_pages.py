"""The supervisor's accounts pages (/admin/users, /admin/tokens) through the real app (httpx +
ASGI) on SQLite and PostgreSQL: every change is made with the real forms (session cookie and
CSRF token) and then checked by signing in, calling the API or reading the database."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI

from call_router import accounts
from call_router.db import Database
from call_router.operators import add_operator, parse_skills
from call_router.settings import Settings
from dashboard import auth
from dashboard.main import create_app
from tests.conftest import bearer_headers

BASE = "http://dashboard.test"
PASSWORD = "a long enough secret"
HOSTILE = '<script>alert("x")</script>'

Client = Callable[[], httpx.AsyncClient]


@pytest.fixture
def app_db(database: Database) -> Database:
    with database.session() as session:
        add_operator(session, "Olga", parse_skills("heating"), login="3201")
        # Roster names are typed by people: this one must come out as text.
        add_operator(session, HOSTILE, parse_skills("heating"), login="3202")
        now = datetime.now(UTC)
        accounts.create_user(session, "sup", PASSWORD, "supervisor", now=now)
        accounts.create_user(session, "olga", PASSWORD, "operator", operator_login="3201", now=now)
    return database


@pytest.fixture
def app(app_db: Database, tmp_path: Path) -> FastAPI:
    # AMI and Redis on closed loopback ports (the sign-in throttle then counts in memory).
    settings = Settings(state_dir=tmp_path / "state", ami_port=1, redis_url="redis://127.0.0.1:1/0")
    return create_app(settings, app_db, zone=ZoneInfo("UTC"))


@pytest.fixture
async def clients(app: FastAPI) -> AsyncIterator[Client]:
    """Fresh browsers (own cookie jars) on the same app, English pages."""
    opened: list[httpx.AsyncClient] = []

    def client() -> httpx.AsyncClient:
        opened.append(
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url=BASE,
                cookies={"hotline_lang": "en"},
            )
        )
        return opened[-1]

    try:
        yield client
    finally:
        for each in opened:
            await each.aclose()


async def sign_in(http: httpx.AsyncClient, username: str, password: str = PASSWORD) -> int:
    """The real login form; returns the POST's status (303 signed in)."""
    form = await http.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text
    response = await http.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf[1]}
    )
    return response.status_code


async def page_csrf(http: httpx.AsyncClient, path: str = "/admin/users") -> str:
    page = await http.get(path)
    assert page.status_code == 200, page.text
    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', page.text)
    assert token, page.text
    return token[1]


async def supervisor(clients: Client) -> tuple[httpx.AsyncClient, str]:
    http = clients()
    assert await sign_in(http, "sup") == 303
    return http, await page_csrf(http)


def shown_secret(page: httpx.Response) -> str:
    found = re.search(r'<code class="secret" id="shown-secret-value">([^<]+)</code>', page.text)
    assert found, page.text
    return html.unescape(found[1])


def user_row(page: httpx.Response, username: str) -> str:
    found = re.search(rf'<tr id="user-{re.escape(username)}".*?</tr>', page.text, re.S)
    assert found, page.text
    return found[0]


async def test_the_page_lists_accounts_and_escapes_roster_names(clients: Client) -> None:
    http, _csrf = await supervisor(clients)
    page = await http.get("/admin/users")

    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    olga = user_row(page, "olga")
    assert 'data-active="true"' in olga and "operator" in olga
    assert re.search(r'<option value="3201" selected>3201 — Olga</option>', olga)
    assert re.search(r"<td class=\"number\">\d{4}-\d\d-\d\d \d\d:\d\d</td>", user_row(page, "sup"))
    assert HOSTILE not in page.text
    assert html.escape(HOSTILE, quote=False).replace('"', "&#34;") in page.text
    # The accounts page is linked from the supervisor's navigation.
    assert 'id="nav-admin"' in page.text


async def test_a_new_operator_gets_a_generated_password_shown_once_that_signs_in(
    clients: Client,
) -> None:
    http, csrf = await supervisor(clients)
    created = await http.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "pavel", "role": "operator", "operator": "3202"},
    )
    assert created.status_code == 200, created.text
    assert created.headers["cache-control"] == "no-store"
    password = shown_secret(created)
    assert len(password) >= accounts.MIN_PASSWORD_LENGTH

    pavel = clients()
    assert await sign_in(pavel, "pavel", password) == 303
    me = (await pavel.get("/api/me")).json()
    assert (me["role"], me["operator_login"]) == ("operator", "3202")
    # Shown once: the list afterwards has no trace of it.
    again = await http.get("/admin/users")
    assert password not in again.text and 'id="shown-secret"' not in again.text


async def test_a_typed_password_is_not_echoed_and_bad_input_is_explained(
    clients: Client, app_db: Database
) -> None:
    http, csrf = await supervisor(clients)
    typed = await http.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "username": "anna",
            "role": "supervisor",
            "password": "typed by the boss",
        },
    )
    assert typed.status_code == 303
    notice = await http.get(typed.headers["location"])
    assert "Account anna created." in notice.text and "typed by the boss" not in notice.text
    assert await sign_in(clients(), "anna", "typed by the boss") == 303

    cases = [
        ({"username": HOSTILE, "role": "operator"}, "User name: 1-64 letters"),
        ({"username": "anna", "role": "operator"}, "Account anna already exists."),
        ({"username": "boris", "role": "operator", "password": "short"}, "at least 10"),
        ({"username": "boris", "role": "admin"}, "Unknown role."),
        ({"username": "boris", "role": "operator", "operator": "9999"}, "SIP login 9999"),
    ]
    for form, message in cases:
        refused = await http.post("/admin/users", data={"csrf_token": csrf, **form})
        assert refused.status_code == 400, form
        error = re.search(
            r'<p class="error" id="admin-error" role="alert">([^<]+)</p>', refused.text
        )
        assert error and message in html.unescape(error[1]), (form, refused.text)
        assert HOSTILE not in refused.text
    with app_db.session() as session:
        assert [u.username for u in accounts.list_users(session)] == ["anna", "olga", "sup"]

    russian = await http.post(
        "/admin/users?lang=ru", data={"csrf_token": csrf, "username": "anna", "role": "operator"}
    )
    assert "Учётная запись anna уже есть." in russian.text


async def test_disabling_ends_the_accounts_sessions_at_once_and_enabling_restores_it(
    clients: Client,
) -> None:
    http, csrf = await supervisor(clients)
    olga = clients()
    assert await sign_in(olga, "olga") == 303
    assert (await olga.get("/api/me")).status_code == 200

    disabled = await http.post(
        "/admin/users/olga/active", data={"csrf_token": csrf, "active": "false"}
    )
    assert disabled.status_code == 303
    assert (await olga.get("/api/me")).status_code == 401
    assert (await olga.get("/calls")).status_code == 303
    assert await sign_in(clients(), "olga") == 401
    listed = await http.get("/admin/users")
    assert 'data-active="false"' in user_row(listed, "olga")

    enabled = await http.post(
        "/admin/users/olga/active", data={"csrf_token": csrf, "active": "true"}
    )
    assert enabled.status_code == 303
    assert await sign_in(clients(), "olga") == 303

    # The supervisor at the page cannot lock themself out of it.
    own = await http.post("/admin/users/sup/active", data={"csrf_token": csrf, "active": "false"})
    assert own.status_code == 400 and "your own account" in own.text
    assert (await http.get("/api/me")).status_code == 200


async def test_a_password_reset_ends_old_sessions_and_the_new_one_works(
    clients: Client,
) -> None:
    http, csrf = await supervisor(clients)
    olga = clients()
    assert await sign_in(olga, "olga") == 303

    reset = await http.post("/admin/users/olga/password", data={"csrf_token": csrf})
    assert reset.status_code == 200
    new_password = shown_secret(reset)
    assert (await olga.get("/api/me")).status_code == 401
    assert await sign_in(clients(), "olga", PASSWORD) == 401
    assert await sign_in(clients(), "olga", new_password) == 303

    typed = await http.post(
        "/admin/users/olga/password", data={"csrf_token": csrf, "password": "another good one"}
    )
    assert typed.status_code == 303
    assert await sign_in(clients(), "olga", "another good one") == 303
    missing = await http.post("/admin/users/ghost/password", data={"csrf_token": csrf})
    assert missing.status_code == 400 and "No account ghost." in missing.text


async def test_a_password_reset_lifts_a_lockout(clients: Client) -> None:
    http, csrf = await supervisor(clients)
    guesser = clients()
    for _ in range(5):
        assert await sign_in(guesser, "olga", "wrong password") == 401
    assert await sign_in(clients(), "olga") == 429

    reset = await http.post(
        "/admin/users/olga/password", data={"csrf_token": csrf, "password": "fresh and long"}
    )
    assert reset.status_code == 303
    assert await sign_in(clients(), "olga", "fresh and long") == 303


async def test_linking_an_account_to_a_roster_operator(clients: Client) -> None:
    http, csrf = await supervisor(clients)
    linked = await http.post(
        "/admin/users/olga/operator", data={"csrf_token": csrf, "operator": "3202"}
    )
    assert linked.status_code == 303
    olga = clients()
    assert await sign_in(olga, "olga") == 303
    assert (await olga.get("/api/me")).json()["operator_login"] == "3202"

    await http.post("/admin/users/olga/operator", data={"csrf_token": csrf, "operator": ""})
    assert (await olga.get("/api/me")).json()["operator_login"] is None
    unknown = await http.post(
        "/admin/users/olga/operator", data={"csrf_token": csrf, "operator": "9"}
    )
    assert unknown.status_code == 400 and "No operator with SIP login 9" in unknown.text


async def test_api_tokens_are_created_shown_once_listed_without_secret_and_revoked(
    clients: Client,
) -> None:
    http, csrf = await supervisor(clients)
    created = await http.post(
        "/admin/tokens", data={"csrf_token": csrf, "role": "supervisor", "name": HOSTILE}
    )
    assert created.status_code == 200 and created.headers["cache-control"] == "no-store"
    token = shown_secret(created)
    assert token.startswith(accounts.TOKEN_PREFIX)
    assert HOSTILE not in created.text

    bearer = {"Authorization": f"Bearer {token}"}
    assert (await clients().get("/api/calls", headers=bearer)).status_code == 200
    listed = await http.get("/admin/tokens")
    assert token not in listed.text and token[:12] in listed.text
    row = re.search(r'<tr id="token-(\d+)" data-revoked="false">(.*?)</tr>', listed.text, re.S)
    assert row and "Last used" in listed.text and "never" not in row[2]

    revoked = await http.post(f"/admin/tokens/{row[1]}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 303
    assert (await clients().get("/api/calls", headers=bearer)).status_code == 401
    after = await http.get(revoked.headers["location"])
    assert f'<tr id="token-{row[1]}" data-revoked="true">' in after.text
    assert f"API token {row[1]} revoked." in after.text

    refused = await http.post("/admin/tokens", data={"csrf_token": csrf, "role": "boss"})
    assert refused.status_code == 400 and "Unknown role." in refused.text
    missing = await http.post("/admin/tokens/999999/revoke", data={"csrf_token": csrf})
    assert missing.status_code == 404


async def test_every_form_needs_the_sessions_csrf_token(clients: Client, app: FastAPI) -> None:
    http, csrf = await supervisor(clients)
    posts = [
        info.path.replace("{username}", "olga")
        .replace("{token_id}", "1")
        .replace("{address}", "127.0.0.2")
        .replace("{slug}", "dom-a")
        for info in auth.route_table(app)
        if info.path.startswith("/admin/") and "POST" in info.methods
    ]
    # Accounts (4), tokens (2), lifting a SIP ban (/admin/security/{address}/lift) and
    # tenants (3: a tenant, its number, its account).
    assert len(posts) == 10, posts
    assert "/admin/security/127.0.0.2/lift" in posts
    for path in posts:
        response = await http.post(path, data={"active": "false", "role": "operator"})
        assert response.status_code == 403, path
        wrong = await http.post(path, data={"csrf_token": csrf[:-2], "active": "false"})
        assert wrong.status_code == 403, path
    assert await sign_in(clients(), "olga") == 303, "nothing was changed"


async def test_an_operator_gets_403_on_every_admin_route(
    clients: Client, app: FastAPI, app_db: Database
) -> None:
    olga = clients()
    assert await sign_in(olga, "olga") == 303
    csrf = await page_csrf(olga, "/calls")
    operator_token = bearer_headers(app_db, role="operator")
    admin_routes = [
        (method, info.path.replace("{username}", "olga").replace("{token_id}", "1"))
        for info in auth.route_table(app)
        if info.path.startswith("/admin/")
        for method in sorted(info.methods - {"HEAD"})
    ]
    assert ("GET", "/admin/users") in admin_routes and ("GET", "/admin/tokens") in admin_routes
    for method, path in admin_routes:
        by_session = await olga.request(
            method, path, data={"csrf_token": csrf, "role": "supervisor"}
        )
        by_token = await clients().request(method, path, headers=operator_token)
        assert (by_session.status_code, by_token.status_code) == (403, 403), (method, path)
    calls = await olga.get("/calls")
    assert 'id="nav-admin"' not in calls.text


async def test_the_pages_speak_russian(clients: Client) -> None:
    http, _csrf = await supervisor(clients)
    users = await http.get("/admin/users?lang=ru")
    tokens = await http.get("/admin/tokens?lang=ru")
    assert "<h1>Учётные записи</h1>" in users.text and "Новая учётная запись" in users.text
    assert "<h1>API-токены</h1>" in tokens.text and "API-токенов нет." in tokens.text
