"""`hotline tenants …` and `hotline numbers …`: the management companies the centre serves and
the numbers residents dial (each the centre's or one tenant's). Registered by hotline/cli.py;
the rules are in call_router/tenants.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from call_router.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from call_router.tenant_models import DialledNumber, Tenant

tenants_app = typer.Typer(help="Management companies served by the centre.", no_args_is_help=True)
numbers_app = typer.Typer(help="Dialled numbers: the centre's or a tenant's.", no_args_is_help=True)

T = TypeVar("T")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _run(action: Callable[[Session], T]) -> T:
    """`action(session)` in one transaction; a TenantError exits 2 with its message."""
    from call_router.db import Database
    from call_router.tenants import TenantError

    db = Database(get_settings().db_url)
    try:
        db.upgrade()
        with db.session() as session:
            return action(session)
    except TenantError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    finally:
        db.dispose()


def tenant_dict(session: Session, tenant: Tenant) -> dict[str, Any]:
    from sqlalchemy import func, select

    from call_router.models import Call, Operator
    from call_router.tenant_models import DialledNumber

    def count(model: Any) -> int:
        stmt = select(func.count()).select_from(model).where(model.tenant_id == tenant.id)
        return int(session.scalar(stmt) or 0)

    numbers = session.scalars(
        select(DialledNumber.number)
        .where(DialledNumber.tenant_id == tenant.id)
        .order_by(DialledNumber.number)
    )
    return {
        "slug": tenant.slug,
        "name": tenant.name,
        "created_at": tenant.created_at.isoformat(),
        "numbers": list(numbers),
        "operators": count(Operator),
        "calls": count(Call),
    }


def _number_dict(row: DialledNumber, slugs: dict[int, str]) -> dict[str, Any]:
    return {"number": row.number, "tenant": slugs.get(row.tenant_id) if row.tenant_id else None}


def _emit(info: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    typer.echo(json.dumps(info) if as_json else text(info))


@tenants_app.command("add")
def tenants_add(
    name: str,
    slug: Annotated[
        str | None, typer.Option(help="Short name for --tenant and ?tenant= (default: from NAME).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a tenant (a management company or homeowners' association)."""
    from call_router import tenants

    info = _run(lambda s: tenant_dict(s, tenants.add_tenant(s, name, slug=slug)))
    _emit(info, as_json, lambda i: f"tenant {i['slug']} ({i['name']}) added")


@tenants_app.command("list")
def tenants_list(as_json: JsonOpt = False) -> None:
    """List tenants with their numbers."""
    from call_router import tenants

    rows = _run(lambda s: [tenant_dict(s, t) for t in tenants.list_tenants(s)])

    def text(items: list[dict[str, Any]]) -> str:
        return "\n".join(
            f"{i['slug']:<20} {i['name']:<30} numbers: {', '.join(i['numbers']) or '-'}"
            for i in items
        )

    _emit(rows, as_json, text)


@tenants_app.command("show")
def tenants_show(slug: str, as_json: JsonOpt = False) -> None:
    """One tenant: its numbers, operators and calls."""
    from call_router import tenants

    info = _run(lambda s: tenant_dict(s, tenants.require_tenant(s, slug)))

    def text(i: dict[str, Any]) -> str:
        return "\n".join(
            [
                f"tenant   {i['slug']} ({i['name']})",
                f"numbers  {', '.join(i['numbers']) or '-'}",
                f"operators {i['operators']}, calls {i['calls']}",
            ]
        )

    _emit(info, as_json, text)


@numbers_app.command("add")
def numbers_add(
    number: str,
    tenant: Annotated[str | None, typer.Option(help="The tenant (slug) it belongs to.")] = None,
    centre: Annotated[bool, typer.Option("--centre", help="The centre's own number.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Point a dialled number at a tenant (--tenant T) or at the centre (--centre): calls to it
    are that tenant's. Pointing an existing number elsewhere moves it for new calls."""
    from call_router import tenants

    if (tenant is None) == (not centre):
        typer.secho("error: give exactly one of --tenant T or --centre", err=True)
        raise typer.Exit(2)
    info = _run(lambda s: _number_dict(tenants.add_number(s, number, tenant), tenants.slugs(s)))
    _emit(info, as_json, lambda i: f"number {i['number']} -> {i['tenant'] or 'the centre'}")


@numbers_app.command("list")
def numbers_list(as_json: JsonOpt = False) -> None:
    """List dialled numbers and whose they are."""
    from call_router import tenants

    rows = _run(lambda s: [_number_dict(n, tenants.slugs(s)) for n in tenants.list_numbers(s)])
    _emit(
        rows,
        as_json,
        lambda items: "\n".join(f"{i['number']:<16} {i['tenant'] or 'centre'}" for i in items),
    )
