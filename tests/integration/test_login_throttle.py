"""Brute-force protection of POST /login through the real app (httpx + ASGI) with the real Redis
(a key prefix of the test's own) on SQLite and PostgreSQL: per account, per client address,
shared by two app instances (two dashboard processes), reset by a success, and still limiting
(in the process) when Redis is down."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis
from typer.testing import CliRunner

from call_router import accounts
from call_router.db import Database
from call_router.settings import Settings
from dashboard import login_throttle
from dashboard.device_trust import DEVICE_COOKIE
from dashboard.main import create_app
from hotline.cli import app as cli
from tests.integration.conftest import REDIS_URL

BASE = "http://dashboard.test"
PASSWORD = "a long enough secret"
ACCOUNT_LIMIT = login_throttle.PER_ACCOUNT.amount
ADDRESS_LIMIT = login_throttle.PER_ADDRESS.amount

Client = Callable[..., httpx.AsyncClient]


@pytest.fixture
def app_db(database: Database) -> Database:
    with database.session() as session:
        accounts.create_user(session, "sup", PASSWORD, "supervisor", now=datetime.now(UTC))
    return database


def _app(db: Database, tmp_path: Path, redis_url: str, prefix: str) -> FastAPI:
    settings = Settings(
        state_dir=tmp_path / "state", ami_port=1, redis_url=redis_url, redis_prefix=prefix
    )
    return create_app(settings, db, zone=ZoneInfo("UTC"))


@pytest.fixture
async def clients(
    app_db: Database, tmp_path: Path, redis_prefix: str
) -> AsyncIterator[Callable[..., httpx.AsyncClient]]:
    """`clients(app=0, address="127.0.0.1")`: a browser at `address` talking to one of two
    dashboard processes (app instances) that share the database and Redis."""
    apps = [_app(app_db, tmp_path, REDIS_URL, redis_prefix) for _ in range(2)]
    opened: list[httpx.AsyncClient] = []

    def client(app: int = 0, address: str = "127.0.0.1") -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=apps[app], client=(address, 40000))
        opened.append(httpx.AsyncClient(transport=transport, base_url=BASE))
        return opened[-1]

    try:
        yield client
    finally:
        for each in opened:
            await each.aclose()


async def attempt(http: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """One real sign-in: the form (for its CSRF cookie), then the POST."""
    form = await http.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text
    return await http.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf[1]}
    )


def _locked_text(response: httpx.Response) -> str:
    found = re.search(r'<p class="error" id="login-locked"[^>]*>([^<]*)</p>', response.text)
    assert found, response.text
    return found[1]


async def test_an_account_is_locked_after_five_failures_whether_or_not_it_exists(
    clients: Client, redis_client: Redis, redis_prefix: str
) -> None:
    http = clients()
    http.cookies.set("hotline_lang", "en")
    for username in ("sup", "nobody"):
        for _ in range(ACCOUNT_LIMIT):
            assert (await attempt(http, username, "wrong password")).status_code == 401
    # Even the right password is refused now, before it is checked.
    locked = await attempt(http, "sup", PASSWORD)
    unknown = await attempt(http, "nobody", PASSWORD)

    for response in (locked, unknown):
        assert response.status_code == 429
        assert int(response.headers["retry-after"]) > 800
        assert _locked_text(response) == "Too many failed sign-ins. Try again in 15 min."
        assert 'id="login-error"' not in response.text
        assert "hotline_session=" not in response.headers.get("set-cookie", "")
    # The same answer for a real and a made-up account: nothing tells which exists.
    assert _locked_text(locked) == _locked_text(unknown)

    keys = [key.decode() async for key in redis_client.scan_iter(match=f"{redis_prefix}:*")]
    assert keys, "the counts live in Redis, under the dashboard's prefix"
    assert not [key for key in keys if "sup" in key or "nobody" in key], keys


async def test_the_lockout_is_shared_by_every_dashboard_process_and_in_both_languages(
    clients: Client,
) -> None:
    first, second = clients(app=0), clients(app=1)
    for _ in range(ACCOUNT_LIMIT):
        assert (await attempt(first, "sup", "wrong password")).status_code == 401
    second.cookies.set("hotline_lang", "ru")
    response = await attempt(second, "SUP ", PASSWORD)
    assert response.status_code == 429
    assert _locked_text(response) == (
        "Слишком много неудачных попыток входа. Попробуйте через 15 мин."
    )
    second.cookies.set("hotline_lang", "en")
    english = await attempt(second, "sup", PASSWORD)
    assert _locked_text(english) == "Too many failed sign-ins. Try again in 15 min."


async def test_a_successful_sign_in_forgives_the_accounts_failures(clients: Client) -> None:
    http = clients()
    for _ in range(ACCOUNT_LIMIT - 1):
        assert (await attempt(http, "sup", "wrong password")).status_code == 401
    assert (await attempt(http, "sup", PASSWORD)).status_code == 303
    http.cookies.clear()
    for _ in range(ACCOUNT_LIMIT - 1):
        assert (await attempt(http, "sup", "wrong password")).status_code == 401
    assert (await attempt(http, "sup", PASSWORD)).status_code == 303


async def test_one_address_is_limited_across_accounts_and_others_are_not(
    clients: Client,
) -> None:
    guesser = clients(address="127.0.0.2")
    for number in range(ADDRESS_LIMIT):
        # A new made-up name each time: the per-account limit never trips.
        response = await attempt(guesser, f"guess{number}", "wrong password")
        assert response.status_code == 401, number
    assert (await attempt(guesser, "sup", PASSWORD)).status_code == 429
    # The real supervisor at another desk is not locked out by the guesser.
    assert (await attempt(clients(address="127.0.0.3"), "sup", PASSWORD)).status_code == 303


async def test_when_redis_is_down_the_limit_still_holds_in_the_process(
    app_db: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing listens on port 1: every Redis call fails at once.
    app = _app(app_db, tmp_path, "redis://127.0.0.1:1/0", "hotline-test-down")
    caplog.set_level(logging.WARNING, logger="dashboard.login_throttle")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as http:
        for _ in range(ACCOUNT_LIMIT):
            assert (await attempt(http, "sup", "wrong password")).status_code == 401
        assert (await attempt(http, "sup", PASSWORD)).status_code == 429
    warnings = [r.getMessage() for r in caplog.records if "Redis unavailable" in r.getMessage()]
    assert len(warnings) == 1, "one warning per outage, not one per request"


async def test_hotline_users_passwd_lifts_a_lockout(
    clients: Client, app_db: Database, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    http = clients()
    for _ in range(ACCOUNT_LIMIT):
        assert (await attempt(http, "sup", "wrong password")).status_code == 401
    assert (await attempt(http, "sup", PASSWORD)).status_code == 429

    monkeypatch.setenv("HOTLINE_DATABASE_URL", app_db.url)
    monkeypatch.setenv("HOTLINE_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("HOTLINE_REDIS_PREFIX", redis_prefix)
    result = CliRunner().invoke(
        cli, ["users", "passwd", "sup", "--password-stdin"], input="a brand new secret\n"
    )
    assert result.exit_code == 0, result.output
    assert (await attempt(clients(), "sup", "a brand new secret")).status_code == 303


# --- device cookies: the lock-out is no denial of service -------------------------------------


def signed_out(browser: httpx.AsyncClient) -> None:
    """The session is over (signed out, expired); the browser keeps its other cookies."""
    browser.cookies.delete("hotline_session")


async def test_a_known_browser_signs_in_while_an_attacker_holds_the_accounts_lockout(
    clients: Client,
) -> None:
    supervisors_browser = clients(address="127.0.0.5")
    assert (await attempt(supervisors_browser, "sup", PASSWORD)).status_code == 303
    signed_out(supervisors_browser)

    attacker = clients(address="127.0.0.6")
    for _ in range(ACCOUNT_LIMIT):
        assert (await attempt(attacker, "sup", "wrong password")).status_code == 401
    # The attacker, even with the right password, and any browser new to the account, are
    # throttled (from the supervisor's own address too)...
    assert (await attempt(attacker, "sup", PASSWORD)).status_code == 429
    new_browser = clients(address="127.0.0.5")
    assert (await attempt(new_browser, "sup", PASSWORD)).status_code == 429
    # ...the supervisor's own browser is not.
    assert (await attempt(supervisors_browser, "sup", PASSWORD)).status_code == 303


async def test_a_known_browsers_failures_lock_only_that_browser(clients: Client) -> None:
    known = clients(address="127.0.0.7")
    assert (await attempt(known, "sup", PASSWORD)).status_code == 303
    signed_out(known)
    for _ in range(login_throttle.PER_DEVICE.amount):
        assert (await attempt(known, "sup", "wrong password")).status_code == 401
    assert (await attempt(known, "sup", PASSWORD)).status_code == 429
    # Counted on that device, not on the account: another browser still signs in.
    assert (await attempt(clients(address="127.0.0.8"), "sup", PASSWORD)).status_code == 303


async def test_a_forged_or_foreign_device_cookie_is_not_trusted(
    clients: Client, app_db: Database
) -> None:
    with app_db.session() as session:
        accounts.create_user(session, "olga", PASSWORD, "operator", now=datetime.now(UTC))
    operators_browser = clients(address="127.0.0.9")
    assert (await attempt(operators_browser, "olga", PASSWORD)).status_code == 303
    olgas_cookie = operators_browser.cookies.get(DEVICE_COOKIE)
    assert olgas_cookie

    attacker = clients(address="127.0.0.10")
    for _ in range(ACCOUNT_LIMIT):
        assert (await attempt(attacker, "sup", "wrong password")).status_code == 401
    # Olga's cookie is for Olga's account; a cookie with a changed signature is nobody's.
    with_olgas = clients(address="127.0.0.11")
    with_olgas.cookies.set(DEVICE_COOKIE, olgas_cookie, domain="dashboard.test", path="/login")
    forged = clients(address="127.0.0.12")
    forged.cookies.set(
        DEVICE_COOKIE, olgas_cookie[:-4] + "0000", domain="dashboard.test", path="/login"
    )
    assert (await attempt(with_olgas, "sup", PASSWORD)).status_code == 429
    assert (await attempt(forged, "sup", PASSWORD)).status_code == 429


# --- parallel guesses: checked and counted in one step ------------------------------------------

BURST = 30


async def _burst(browser: httpx.AsyncClient, username: str) -> list[int]:
    """BURST wrong passwords sent at once (one form, then the POSTs in parallel): how many
    were answered 401, i.e. had their password checked."""
    form = await browser.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert csrf, form.text
    data = {"username": username, "password": "wrong password", "csrf_token": csrf[1]}
    responses = await asyncio.gather(*(browser.post("/login", data=data) for _ in range(BURST)))
    return [response.status_code for response in responses]


async def test_parallel_guesses_get_no_more_tries_than_the_limit(clients: Client) -> None:
    """Checking the lock-out before the (slow) password check and counting after it let a
    burst of parallel guesses all through: BURST guesses where the limit is five."""
    known = clients(address="127.0.0.14")
    assert (await attempt(known, "sup", PASSWORD)).status_code == 303
    signed_out(known)

    statuses = await _burst(clients(address="127.0.0.13"), "sup")
    assert statuses.count(401) <= ACCOUNT_LIMIT, statuses
    assert statuses.count(401) + statuses.count(429) == BURST, statuses
    # A known browser's burst is held to the device's limit the same way.
    statuses = await _burst(known, "sup")
    assert statuses.count(401) <= login_throttle.PER_DEVICE.amount, statuses
