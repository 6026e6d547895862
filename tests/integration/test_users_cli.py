"""`hotline users …` and `hotline tokens …` against a real (SQLite) state dir, the way an admin
types them; the tokens and passwords they print then work on the real app."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from typer.testing import CliRunner

from call_router import accounts
from call_router.db import Database
from call_router.settings import Settings
from dashboard.main import create_app
from hotline.cli import app
from hotline.cli_users import ensure_first_supervisor


def _now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    return Settings()


def hotline(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    return result.exit_code, result.output


def test_users_add_prints_a_generated_password_that_signs_in(state: Settings) -> None:
    code, out = hotline("users", "add", "anna", "--role", "supervisor")
    assert code == 0, out
    password = re.search(r"password: (\S+)", out)
    assert password and len(password[1]) >= 20

    db = Database(state.db_url)
    try:
        with db.session() as session:
            assert accounts.authenticate(session, "anna", password[1], now=_now()) is not None
    finally:
        db.dispose()


def test_users_add_with_a_password_on_stdin_prints_none(state: Settings) -> None:
    code, out = hotline(
        "users",
        "add",
        "boris",
        "--role",
        "operator",
        "--password-stdin",
        "--json",
        stdin="a long enough secret\n",
    )
    assert code == 0, out
    assert json.loads(out) == {
        "username": "boris",
        "role": "operator",
        "operator": None,
        "tenant": None,
    }
    assert "a long enough secret" not in out


def test_users_add_refuses_bad_input_with_a_clear_error(state: Settings) -> None:
    assert hotline("users", "add", "anna", "--role", "admin")[0] == 2
    code, out = hotline("users", "add", "anna", "--role", "operator", "--operator", "9999")
    assert code == 2 and "no operator" in out
    code, out = hotline(
        "users", "add", "anna", "--role", "operator", "--password-stdin", stdin="x\n"
    )
    assert code == 2 and "at least" in out
    code, out = hotline("users", "list", "--json")
    assert json.loads(out) == [], "nothing half-created"


def test_users_list_disable_and_passwd(state: Settings) -> None:
    hotline("users", "add", "anna", "--role", "supervisor")
    assert hotline("users", "disable", "anna")[0] == 0
    listed = json.loads(hotline("users", "list", "--json")[1])
    assert [(u["username"], u["active"]) for u in listed] == [("anna", False)]
    assert "password" not in json.dumps(listed)

    code, out = hotline("users", "passwd", "anna", "--password-stdin", stdin="brand new secret!\n")
    assert code == 0, out
    assert hotline("users", "enable", "anna")[0] == 0
    db = Database(state.db_url)
    try:
        with db.session() as session:
            assert accounts.authenticate(session, "anna", "brand new secret!", now=_now())
    finally:
        db.dispose()
    assert hotline("users", "disable", "nobody")[0] == 2


async def test_a_token_from_the_cli_works_on_the_app_until_revoked(state: Settings) -> None:
    code, out = hotline("tokens", "create", "--role", "supervisor", "--name", "wall", "--json")
    assert code == 0, out
    created = json.loads(out)
    assert created["token"].startswith("hlt_") and created["name"] == "wall"

    listed = json.loads(hotline("tokens", "list", "--json")[1])
    assert [t["prefix"] for t in listed] == [created["token"][:12]]
    assert created["token"] not in json.dumps(listed)

    db = Database(state.db_url)
    web = create_app(state, db, zone=ZoneInfo("UTC"))
    headers = {"Authorization": f"Bearer {created['token']}"}
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=web), base_url="http://t"
        ) as http:
            assert (await http.get("/api/calls", headers=headers)).status_code == 200
            assert hotline("tokens", "revoke", str(created["id"]))[0] == 0
            assert (await http.get("/api/calls", headers=headers)).status_code == 401
    finally:
        db.dispose()
    assert json.loads(hotline("tokens", "list", "--json")[1])[0]["revoked_at"]


def test_the_first_supervisor_is_made_once_with_a_generated_password(state: Settings) -> None:
    db = Database(state.db_url)
    db.upgrade()
    try:
        with db.session() as session:
            first = ensure_first_supervisor(session)
        with db.session() as session:
            again = ensure_first_supervisor(session)
            admin = accounts.authenticate(session, "admin", first or "", now=_now())
    finally:
        db.dispose()
    assert first and len(first) >= 20
    assert again is None
    assert admin is not None and admin.role == "supervisor"
