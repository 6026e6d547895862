"""The pure parts of dashboard accounts: hashing, token shapes, CSRF comparison, redirects,
and the "deny unless declared" route check."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI

from call_router import accounts
from dashboard import auth


def test_a_password_hash_is_argon2_salted_and_verifies_only_the_right_password() -> None:
    first = accounts.hash_password("correct horse battery")
    second = accounts.hash_password("correct horse battery")

    assert first.startswith("$argon2id$")
    assert first != second, "every hash has its own salt"
    assert "correct horse" not in first
    assert accounts.password_matches(first, "correct horse battery")
    assert not accounts.password_matches(first, "correct horse batterY")
    assert not accounts.password_matches(first, "")
    # A damaged stored hash is a failed login, not a crash.
    assert not accounts.password_matches("not-a-hash", "correct horse battery")


def test_generated_passwords_are_long_random_and_pass_the_rules() -> None:
    passwords = {accounts.generate_password() for _ in range(50)}

    assert len(passwords) == 50
    for password in passwords:
        assert accounts.check_password(password) == password
        assert len(password) >= 20


@pytest.mark.parametrize("password", ["", "short", "123456789"])
def test_short_passwords_are_refused(password: str) -> None:
    with pytest.raises(accounts.AccountError, match="at least"):
        accounts.check_password(password)


@pytest.mark.parametrize("name", ["anna", "a.petrova", "op_1001", "anna@example.org"])
def test_usernames_accepted(name: str) -> None:
    assert accounts.check_username(name) == name


@pytest.mark.parametrize("name", ["", " anna", "anna smith", "<script>", "-x", "a" * 65])
def test_usernames_refused(name: str) -> None:
    with pytest.raises(accounts.AccountError):
        accounts.check_username(name)


def test_roles_are_a_closed_list() -> None:
    assert accounts.check_role("supervisor") == accounts.SUPERVISOR
    assert accounts.check_role("operator") == accounts.OPERATOR
    with pytest.raises(accounts.AccountError, match="role"):
        accounts.check_role("admin")


def test_api_tokens_are_prefixed_random_and_stored_as_a_digest() -> None:
    token = accounts.new_api_token()
    other = accounts.new_api_token()

    assert token.startswith("hlt_") and token != other
    assert accounts.looks_like_api_token(token)
    assert not accounts.looks_like_api_token("hlt_short")
    assert not accounts.looks_like_api_token("Basic dXNlcjpwYXNz")
    digest = accounts.digest(token)
    assert len(digest) == 64 and token not in digest
    assert digest == accounts.digest(token)


def test_csrf_comparison_needs_both_sides_and_equality() -> None:
    secret = accounts.new_secret()

    assert accounts.same_secret(secret, secret)
    assert not accounts.same_secret(secret, secret[:-1])
    assert not accounts.same_secret(secret, None)
    assert not accounts.same_secret(None, secret)
    assert not accounts.same_secret("", "")


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/wallboard", "/wallboard"),
        ("/calls?caller=%2B7495", "/calls?caller=%2B7495"),
        (None, "/"),
        ("", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("wallboard", "/"),
    ],
)
def test_after_login_only_a_path_on_this_site_is_followed(
    target: str | None, expected: str
) -> None:
    assert auth.safe_next(target) == expected


def test_an_app_with_a_router_that_declares_no_rule_refuses_to_start() -> None:
    declared = APIRouter()
    forgotten = APIRouter()

    @declared.get("/api/declared")
    def ok() -> dict[str, str]:
        return {}

    @forgotten.get("/api/forgotten")
    def oops() -> dict[str, str]:
        return {}

    # FastAPI's own public docs routes would be refused too (the dashboard serves them as staff).
    app = FastAPI(openapi_url=None)
    app.include_router(declared, dependencies=[Depends(auth.STAFF)])
    auth.check_routes(app)

    app.include_router(forgotten)
    with pytest.raises(RuntimeError, match="/api/forgotten"):
        auth.check_routes(app)


def test_a_route_with_two_rules_is_refused_too() -> None:
    router = APIRouter()

    @router.get("/api/twice", dependencies=[Depends(auth.PUBLIC)])
    def twice() -> dict[str, str]:
        return {}

    app = FastAPI(openapi_url=None)
    app.include_router(router, dependencies=[Depends(auth.SUPERVISOR_ONLY)])
    with pytest.raises(RuntimeError, match="/api/twice"):
        auth.check_routes(app)


def test_the_dashboards_route_table_gives_every_route_exactly_one_rule() -> None:
    from call_router.settings import Settings
    from dashboard.main import create_app

    app = create_app(Settings(database_url="sqlite://"))
    table = auth.route_table(app)
    rules = {(info.path, method): info.rule for info in table for method in info.methods}

    assert rules[("/healthz", "GET")] is auth.PUBLIC
    assert rules[("/login", "POST")] is auth.PUBLIC
    assert rules[("/api/calls", "GET")] is auth.STAFF
    assert rules[("/wallboard", "GET")] is auth.SUPERVISOR_ONLY
    assert rules[("/api/wallboard/stream", "GET")] is auth.SUPERVISOR_ONLY
    assert rules[("/reports", "GET")] is auth.SUPERVISOR_ONLY
    public = {path for (path, _m), rule in rules.items() if rule is auth.PUBLIC}
    # Open311 clients (a city portal, a 311 app) have no dashboard account: reads are public,
    # POST checks its own API key (tests/integration/test_open311.py).
    open311 = {
        "/open311/v2/services.{fmt}",
        "/open311/v2/services/{code}.{fmt}",
        "/open311/v2/requests.{fmt}",
        "/open311/v2/requests/{number}.{fmt}",
        "/open311/v2/tokens/{token}.{fmt}",
    }
    assert public == {"/healthz", "/login"} | open311
    assert rules[("/api/requests", "POST")] is auth.REQUESTS
