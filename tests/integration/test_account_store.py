"""Accounts, sessions and API tokens on the real databases (SQLite and PostgreSQL), migrated by
Alembic. The clock is injected: expiry never depends on when the test runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from call_router import accounts
from call_router.account_models import ApiToken, DashboardSession
from call_router.db import Database
from call_router.operators import add_operator, parse_skills

T0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
PASSWORD = "a long enough secret"


def _user(db: Database, name: str = "anna", role: str = "supervisor", **kw: str) -> None:
    with db.session() as session:
        accounts.create_user(session, name, PASSWORD, role, now=T0, **kw)


def test_a_user_signs_in_with_the_right_password_only(database: Database) -> None:
    _user(database)
    with database.session() as session:
        assert accounts.authenticate(session, "anna", "wrong password!", now=T0) is None
        assert accounts.authenticate(session, "nobody", PASSWORD, now=T0) is None
        user = accounts.authenticate(session, "anna", PASSWORD, now=T0 + timedelta(minutes=1))
        assert user is not None and user.role == "supervisor"
    with database.session() as session:
        stored = accounts.get_user(session, "anna")
        assert stored is not None
        assert stored.last_login_at == T0 + timedelta(minutes=1)
        assert PASSWORD not in stored.password_hash


def test_usernames_are_unique_and_the_operator_link_must_exist(database: Database) -> None:
    _user(database)
    with pytest.raises(accounts.AccountError, match="already exists"):
        _user(database)
    with pytest.raises(accounts.AccountError, match="no operator"):
        _user(database, "boris", "operator", operator_login="9999")


def test_an_operator_account_is_linked_to_its_roster_login(database: Database) -> None:
    with database.session() as session:
        op = add_operator(session, "Olga", parse_skills("heating"), login="3101")
        assert op.sip_login == "3101"
    _user(database, "olga", "operator", operator_login="3101")
    with database.session() as session:
        user = accounts.authenticate(session, "olga", PASSWORD, now=T0)
        assert user is not None
        principal = accounts.user_principal(user)
    assert principal.role == "operator" and principal.operator_login == "3101"
    assert not principal.is_supervisor


def test_a_session_lasts_until_it_expires(database: Database) -> None:
    _user(database)
    with database.session() as session:
        user = accounts.authenticate(session, "anna", PASSWORD, now=T0)
        assert user is not None
        cookie, row = accounts.start_session(session, user, now=T0, lifetime=timedelta(hours=12))
        csrf = row.csrf_token
    with database.session() as session:
        # Only a digest is stored: the cookie itself is nowhere in the table.
        assert session.get(DashboardSession, cookie) is None
        seen = accounts.session_principal(session, cookie, now=T0 + timedelta(hours=11))
        assert seen is not None and seen.name == "anna" and seen.csrf_token == csrf
        assert accounts.session_principal(session, cookie, now=T0 + timedelta(hours=12)) is None
        assert accounts.session_principal(session, cookie + "x", now=T0) is None


def test_signing_out_disabling_or_a_new_password_ends_sessions(database: Database) -> None:
    _user(database)

    def new_session() -> str:
        with database.session() as session:
            user = accounts.authenticate(session, "anna", PASSWORD, now=T0)
            assert user is not None
            cookie, _ = accounts.start_session(session, user, now=T0, lifetime=timedelta(hours=1))
            return cookie

    def alive(cookie: str) -> bool:
        with database.session() as session:
            return accounts.session_principal(session, cookie, now=T0) is not None

    cookie = new_session()
    with database.session() as session:
        accounts.end_session(session, cookie)
    assert not alive(cookie)

    cookie = new_session()
    with database.session() as session:
        accounts.set_password(session, "anna", "another long secret")
    assert not alive(cookie)
    with database.session() as session:
        assert accounts.authenticate(session, "anna", PASSWORD, now=T0) is None
        assert accounts.authenticate(session, "anna", "another long secret", now=T0) is not None

    with database.session() as session:
        user = accounts.authenticate(session, "anna", "another long secret", now=T0)
        assert user is not None
        cookie, _ = accounts.start_session(session, user, now=T0, lifetime=timedelta(hours=1))
    with database.session() as session:
        accounts.set_active(session, "anna", False)
    assert not alive(cookie)
    with database.session() as session:
        assert accounts.authenticate(session, "anna", "another long secret", now=T0) is None


def test_expired_sessions_are_swept_when_someone_signs_in(database: Database) -> None:
    _user(database)
    with database.session() as session:
        user = accounts.get_user(session, "anna")
        assert user is not None
        accounts.start_session(session, user, now=T0, lifetime=timedelta(hours=1))
        accounts.start_session(session, user, now=T0 + timedelta(hours=2), lifetime=timedelta(1))
    with database.session() as session:
        assert session.query(DashboardSession).count() == 1


def test_an_api_token_works_until_revoked_and_records_its_use(database: Database) -> None:
    with database.session() as session:
        token, row = accounts.create_token(session, "supervisor", name="hall screen", now=T0)
        token_id = row.id
    with database.session() as session:
        assert session.query(ApiToken).filter(ApiToken.token_hash == token).count() == 0
        principal = accounts.token_principal(session, token, now=T0 + timedelta(seconds=5))
        assert principal is not None
        assert (principal.kind, principal.name, principal.role) == (
            "token",
            "hall screen",
            "supervisor",
        )
        assert principal.csrf_token is None, "Bearer requests need no CSRF token"
        # Used again within a minute: last_used_at is not rewritten on every request.
        accounts.token_principal(session, token, now=T0 + timedelta(seconds=30))
    with database.session() as session:
        listed = accounts.list_tokens(session)
        assert [t.prefix for t in listed] == [token[:12]]
        assert listed[0].last_used_at == T0 + timedelta(seconds=5)
        accounts.revoke_token(session, token_id, now=T0 + timedelta(minutes=1))
    with database.session() as session:
        assert accounts.token_principal(session, token, now=T0 + timedelta(minutes=2)) is None
        with pytest.raises(accounts.AccountError, match="no API token"):
            accounts.revoke_token(session, token_id + 1000, now=T0)


def test_unknown_or_malformed_tokens_are_refused(database: Database) -> None:
    with database.session() as session:
        accounts.create_token(session, "operator", name=None, now=T0)
        assert accounts.token_principal(session, accounts.new_api_token(), now=T0) is None
        assert accounts.token_principal(session, "", now=T0) is None
        assert accounts.token_principal(session, "' OR 1=1 --", now=T0) is None
        with pytest.raises(accounts.AccountError, match="role"):
            accounts.create_token(session, "root", name=None, now=T0)
