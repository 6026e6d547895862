"""The supervisor's /admin/security page through the real app (httpx + ASGI) on SQLite and
PostgreSQL: it lists the active SIP bans; the lift form (session cookie and CSRF token) ends a
ban in the database, recorded as the supervisor's; operators and forged forms get nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from fastapi import FastAPI
from sqlalchemy import select

from call_router import accounts, sip_bans
from call_router.ban_policy import parse_networks
from call_router.db import Database
from call_router.settings import Settings
from call_router.sip_ban_models import SipBan
from dashboard.main import create_app
from tests.integration.test_admin_pages import PASSWORD, Client, page_csrf, sign_in
from tests.integration.test_admin_pages import clients as clients  # the same browsers fixture

BANNED = "203.0.113.77"


@pytest.fixture
def app_db(database: Database) -> Database:
    now = datetime.now(UTC)
    with database.session() as session:
        accounts.create_user(session, "sup", PASSWORD, "supervisor", now=now)
        accounts.create_user(session, "olga", PASSWORD, "operator", now=now)
        sip_bans.record_ban(
            session,
            BANNED,
            now=now,
            duration=timedelta(hours=1),
            failures=12,
            reason="ChallengeResponseFailed",
            protected=parse_networks(["127.0.0.1"]),
        )
        # Expired: not listed.
        sip_bans.record_ban(
            session,
            "203.0.113.78",
            now=now - timedelta(hours=2),
            duration=timedelta(hours=1),
            failures=10,
            reason="InvalidAccountID",
            protected=(),
        )
    return database


@pytest.fixture
def app(app_db: Database, tmp_path: Path) -> FastAPI:
    settings = Settings(state_dir=tmp_path / "state", ami_port=1, redis_url="redis://127.0.0.1:1/0")
    return create_app(settings, app_db, zone=ZoneInfo("UTC"))


async def test_a_supervisor_sees_the_bans_and_lifts_one(clients: Client, app_db: Database) -> None:
    http = clients()
    assert await sign_in(http, "sup") == 303
    page = await http.get("/admin/security")
    assert page.status_code == 200
    assert BANNED in page.text and "203.0.113.78" not in page.text
    assert "12 × ChallengeResponseFailed" in page.text

    csrf = await page_csrf(http, "/admin/security")
    forged = await http.post(f"/admin/security/{BANNED}/lift", data={})
    assert forged.status_code == 403
    lifted = await http.post(f"/admin/security/{BANNED}/lift", data={"csrf_token": csrf})
    assert lifted.status_code == 303
    after = await http.get(lifted.headers["location"])
    assert "is lifted" in after.text and "No banned addresses." in after.text
    with app_db.session() as session:
        row = session.scalars(select(SipBan).where(SipBan.address == BANNED)).one()
        assert row.lifted_by == "sup" and row.lifted_at is not None
        assert sip_bans.active_bans(session, datetime.now(UTC)) == []

    again = await http.post(f"/admin/security/{BANNED}/lift", data={"csrf_token": csrf})
    assert "not_banned" in again.headers["location"]


async def test_operators_cannot_see_or_lift_bans(clients: Client, app_db: Database) -> None:
    http = clients()
    assert await sign_in(http, "olga") == 303
    assert (await http.get("/admin/security")).status_code == 403
    csrf = await page_csrf(http, "/")
    response = await http.post(f"/admin/security/{BANNED}/lift", data={"csrf_token": csrf})
    assert response.status_code == 403
    with app_db.session() as session:
        assert [b.address for b in sip_bans.active_bans(session, datetime.now(UTC))] == [BANNED]


def test_a_carrier_address_cannot_be_banned(database: Database) -> None:
    with database.session() as session, pytest.raises(sip_bans.ProtectedAddress):
        sip_bans.record_ban(
            session,
            "10.0.0.5",
            now=datetime.now(UTC),
            duration=timedelta(hours=1),
            failures=99,
            reason="ChallengeResponseFailed",
            protected=parse_networks(["10.0.0.0/24"]),
        )
