"""`hotline operators …`: the roster, each operator an Asterisk endpoint on its queues.

The config is re-rendered and reloaded on every change. Registered by hotline/cli.py; the rules
are in call_router/operators.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

from call_router.settings import get_settings
from hotline.cli_asterisk import reload_asterisk, render_asterisk
from hotline.cli_session import run_in_session
from hotline.cli_support import JsonOpt

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="The operators roster.")


@app.command("add")
def operators_add(
    name: Annotated[str, typer.Argument(help="The operator's full name, as supervisors see it.")],
    queues: Annotated[str, typer.Option(help="Queues, e.g. plumbing,coordinator:5 (:penalty).")],
    language: Annotated[str, typer.Option(help="ru or en")] = "ru",
    login: Annotated[
        str | None, typer.Option(help="SIP login (default: next free number).")
    ] = None,
    tenant: Annotated[
        str | None,
        typer.Option(help="The tenant (slug) whose specialist this is: its own queues."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an operator and print the SIP login and password. With --tenant T the
    operator is T's: the services named (plumbing, ...) are T's own queues where T has them."""
    from call_router.operators import (
        RosterError,
        add_operator,
        operator_dict,
        skills_for_tenant,
    )
    from call_router.tenants import TenantError

    def add(session: Session) -> dict[str, object]:
        skills, tenant_id = skills_for_tenant(session, queues, tenant)
        operator = add_operator(
            session, name, skills, language=language, login=login, tenant_id=tenant_id
        )
        return operator_dict(operator)

    info = run_in_session(add, (RosterError, TenantError))
    settings = get_settings()
    render_asterisk(settings)
    info["applied"] = reload_asterisk(settings)
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
    else:
        typer.echo(
            f"operator {info['name']}: "
            f"SIP login {info['sip_login']} password {info['sip_password']}"
        )


@app.command("list")
def operators_list(
    as_json: JsonOpt = False,
) -> None:
    """List the roster (passwords only in --json)."""
    from call_router.operators import list_operators, operator_dict

    rows = run_in_session(lambda session: [operator_dict(op) for op in list_operators(session)])
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        queues = ",".join(f"{q['queue']}:{q['penalty']}" for q in row["queues"])  # type: ignore[attr-defined]
        state = "enabled" if row["enabled"] else "disabled"
        typer.echo(f"{row['sip_login']:<8} {state:<9} {row['name']}  [{queues}]")


@app.command("disable")
def operators_disable(
    login: Annotated[str, typer.Argument(help="The operator's SIP login.")],
) -> None:
    """Disable an operator: their endpoint and queue memberships go away."""
    from call_router.operators import RosterError, set_enabled

    run_in_session(lambda session: set_enabled(session, login, False), (RosterError,))
    settings = get_settings()
    render_asterisk(settings)
    reload_asterisk(settings)
    typer.echo(f"operator {login} disabled")
