"""`hotline users …` and `hotline tokens …`: dashboard accounts and API tokens.

Registered by hotline/cli.py. There are no default credentials: `users add` prints a generated
password once unless one is given on standard input; `tokens create` prints the token once.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer

from call_router.settings import get_settings
from hotline.cli_session import run_in_session
from hotline.cli_support import JsonOpt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

users_app = typer.Typer(help="Dashboard accounts (supervisors, operators).", no_args_is_help=True)
tokens_app = typer.Typer(help="API tokens for integrations and wallboard screens.")

FIRST_SUPERVISOR = "admin"

Username = Annotated[str, typer.Argument(help="The account's login name.")]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _now() -> datetime:
    return datetime.now(UTC)


def _read_password_stdin() -> str:
    # One line; the newline that `echo` adds is not part of the password.
    return sys.stdin.readline().rstrip("\r\n")


def _run(action: Any) -> Any:
    """Run `action(session)` in one transaction; an AccountError exits 2 with its message."""
    from call_router.accounts import AccountError

    return run_in_session(action, (AccountError,))


def _list(
    rows: Callable[[Session], list[dict[str, Any]]],
    line: Callable[[dict[str, Any]], str],
    *,
    as_json: bool,
) -> None:
    """`users list` and `tokens list`: the rows as JSON, or one formatted line each."""
    listed = _run(rows)
    if as_json:
        typer.echo(json.dumps(listed))
        return
    for row in listed:
        typer.echo(line(row))


def _tenant_slugs(session: Session) -> dict[int, str]:
    from call_router.tenants import slugs

    return slugs(session)


def ensure_first_supervisor(session: Session) -> str | None:
    """On a hotline without accounts, create `admin` and return its generated password once."""
    from call_router import accounts

    if accounts.count_users(session) > 0:
        return None
    password = accounts.generate_password()
    accounts.create_user(session, FIRST_SUPERVISOR, password, accounts.SUPERVISOR, now=_now())
    return password


# --- users ----------------------------------------------------------------------------------


@users_app.command("add")
def users_add(
    username: Username,
    role: Annotated[str, typer.Option(help="supervisor, operator, dispatcher or crew")],
    operator: Annotated[
        str | None, typer.Option(help="The roster SIP login this account works as.")
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="The tenant (slug) it works for; without it, the centre's (sees all)."),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create a dashboard account; without --password-stdin a strong password is generated
    and printed once."""
    from call_router import accounts

    password, generated = accounts.password_or_generated(
        _read_password_stdin() if password_stdin else None
    )

    def add(session: Session) -> dict[str, Any]:
        user = accounts.create_user(
            session, username, password, role, operator_login=operator, tenant=tenant, now=_now()
        )
        return {
            "username": user.username,
            "role": user.role,
            "operator": operator,
            "tenant": tenant,
        }

    info = _run(add)
    if generated:
        info["password"] = password
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"user {info['username']} ({info['role']}) created")
    if generated:
        typer.echo(f"password: {password}  (shown once; change it with `hotline users passwd`)")


@users_app.command("list")
def users_list(
    as_json: JsonOpt = False,
) -> None:
    """List accounts (never their passwords)."""
    from call_router import accounts

    def rows(session: Session) -> list[dict[str, Any]]:
        slugs = _tenant_slugs(session)
        return [
            {
                "username": u.username,
                "tenant": slugs.get(u.tenant_id) if u.tenant_id is not None else None,
                "role": u.role,
                "operator": u.operator.sip_login if u.operator is not None else None,
                "active": u.active,
                "created_at": _iso(u.created_at),
                "last_login_at": _iso(u.last_login_at),
            }
            for u in accounts.list_users(session)
        ]

    def line(row: dict[str, Any]) -> str:
        state = "active" if row["active"] else "disabled"
        linked = f" operator {row['operator']}" if row["operator"] else ""
        return f"{row['username']:<20} {row['role']:<10} {state:<8}{linked}"

    _list(rows, line, as_json=as_json)


@users_app.command("disable")
def users_disable(username: Username) -> None:
    """Disable an account and end its sessions."""
    from call_router import accounts

    _run(lambda session: accounts.set_active(session, username, False))
    typer.echo(f"user {username} disabled")


@users_app.command("enable")
def users_enable(username: Username) -> None:
    """Enable a disabled account again."""
    from call_router import accounts

    _run(lambda session: accounts.set_active(session, username, True))
    typer.echo(f"user {username} enabled")


@users_app.command("passwd")
def users_passwd(
    username: Username,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
) -> None:
    """Set a new password (generated and printed once unless given on stdin); ends the
    account's sessions and lifts a sign-in lockout, as the dashboard's accounts page does."""
    from call_router import accounts
    from dashboard.login_throttle import LoginThrottle

    password, generated = accounts.password_or_generated(
        _read_password_stdin() if password_stdin else None
    )
    _run(lambda session: accounts.set_password(session, username, password))
    settings = get_settings()
    LoginThrottle(settings.redis_url, settings.redis_prefix).forget_account(username)
    typer.echo(f"password of {username} changed")
    if generated:
        typer.echo(f"password: {password}  (shown once)")


# --- tokens ---------------------------------------------------------------------------------


@tokens_app.command("create")
def tokens_create(
    role: Annotated[str, typer.Option(help="supervisor, operator, dispatcher or crew")],
    name: Annotated[str | None, typer.Option(help="What uses it, e.g. wallboard-hall.")] = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="The tenant (slug) it works for; without it, the centre's (sees all)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API token and print it once (send it as `Authorization: Bearer TOKEN`)."""
    from call_router import accounts

    def create(session: Session) -> dict[str, Any]:
        token, row = accounts.create_token(session, role, name=name, now=_now(), tenant=tenant)
        return {"id": row.id, "name": row.name, "role": row.role, "tenant": tenant, "token": token}

    info = _run(create)
    if as_json:
        typer.echo(json.dumps(info))
        return
    typer.echo(f"token {info['id']} ({info['name']}, {info['role']}):")
    typer.echo(info["token"])
    typer.echo("shown once; revoke with `hotline tokens revoke ID`")


@tokens_app.command("list")
def tokens_list(
    as_json: JsonOpt = False,
) -> None:
    """List API tokens (their first characters only)."""
    from call_router import accounts

    def rows(session: Session) -> list[dict[str, Any]]:
        slugs = _tenant_slugs(session)
        return [
            {
                "id": t.id,
                "tenant": slugs.get(t.tenant_id) if t.tenant_id is not None else None,
                "name": t.name,
                "role": t.role,
                "prefix": t.prefix,
                "created_at": _iso(t.created_at),
                "last_used_at": _iso(t.last_used_at),
                "revoked_at": _iso(t.revoked_at),
            }
            for t in accounts.list_tokens(session)
        ]

    def line(row: dict[str, Any]) -> str:
        state = "revoked" if row["revoked_at"] else "active"
        used = row["last_used_at"] or "never used"
        return (
            f"{row['id']:>4} {row['prefix']}…  {row['role']:<10} {state:<8} {row['name']}  {used}"
        )

    _list(rows, line, as_json=as_json)


@tokens_app.command("revoke")
def tokens_revoke(
    token_id: Annotated[int, typer.Argument(help="The token's id (see `tokens list`).")],
) -> None:
    """Revoke an API token: it stops working at once, in every dashboard process."""
    from call_router import accounts

    _run(lambda session: accounts.revoke_token(session, token_id, now=_now()))
    typer.echo(f"token {token_id} revoked")
