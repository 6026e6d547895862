"""`hotline tenants …` and `hotline numbers …`: the management companies the centre serves and
the numbers residents dial (each the centre's or one tenant's). Registered by hotline/cli.py;
the rules are in call_router/tenants.py."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from call_router.settings import get_settings
from hotline.cli_session import run_in_session
from hotline.cli_support import JsonOpt, emit, fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from call_router.tenant_models import DialledNumber, Tenant

tenants_app = typer.Typer(help="Management companies served by the centre.", no_args_is_help=True)
numbers_app = typer.Typer(help="Dialled numbers: the centre's or a tenant's.", no_args_is_help=True)
buildings_app = typer.Typer(
    help="Tenants' buildings (house codes) and residents' phones.", no_args_is_help=True
)

T = TypeVar("T")
CENTRE_QUEUES_ONLY = "- (served by the centre's queues)"

Slug = Annotated[str, typer.Argument(help="The tenant's slug (see `tenants list`).")]


def _run(action: Callable[[Session], T]) -> T:
    """`action(session)` in one transaction; a TenantError exits 2 with its message."""
    from call_router.tenants import TenantError

    return run_in_session(action, (TenantError,))


def tenant_dict(session: Session, tenant: Tenant) -> dict[str, Any]:
    from sqlalchemy import func, select

    from call_router.models import Call, Operator
    from call_router.tenant_models import Building, DialledNumber
    from call_router.tenant_routing import tenant_queue_name
    from call_router.tenants import own_services

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
        # Its own specialist queues (added field): service -> Asterisk queue name.
        "queues": {
            service: tenant_queue_name(tenant.id, service)
            for service in sorted(own_services(session).get(tenant.id, frozenset()))
        },
        "buildings": count(Building),
        # Its own service-level target (added field); null parts are the centre's.
        "service_level": {
            "seconds": tenant.service_level_seconds,
            "target": tenant.service_level_target,
        },
    }


def _number_dict(row: DialledNumber, slugs: dict[int, str]) -> dict[str, Any]:
    return {"number": row.number, "tenant": slugs.get(row.tenant_id) if row.tenant_id else None}


def _apply_to_asterisk(info: dict[str, Any]) -> None:
    """Re-render the Asterisk config (numbers, queues) and reload a running Asterisk;
    `info["applied"]` says whether it was running."""
    from hotline.cli_asterisk import reload_asterisk, render_asterisk

    settings = get_settings()
    render_asterisk(settings)
    info["applied"] = reload_asterisk(settings)


@tenants_app.command("add")
def tenants_add(
    name: Annotated[str, typer.Argument(help="The tenant's full name, e.g. the company's.")],
    slug: Annotated[
        str | None, typer.Option(help="Short name for --tenant and ?tenant= (default: from NAME).")
    ] = None,
    queues: Annotated[
        str | None,
        typer.Option(help="Its own specialist queues, e.g. plumbing,heating (default: none)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a tenant (a management company or homeowners' association)."""
    from call_router import tenants

    def add(session: Session) -> dict[str, Any]:
        tenant = tenants.add_tenant(session, name, slug=slug)
        if queues:
            tenants.set_tenant_queues(session, tenant.slug, tenants.parse_services(queues))
        return tenant_dict(session, tenant)

    info = _run(add)
    if queues:
        _apply_to_asterisk(info)
    emit(info, as_json, lambda i: f"tenant {i['slug']} ({i['name']}) added")


@tenants_app.command("queues")
def tenants_queues(
    slug: Slug,
    services: Annotated[
        str,
        typer.Argument(help="Its own queues: plumbing,electricity,heating,lift,meters; '' none."),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Set which specialist queues a tenant has of its own (`t<id>_<service>`): its calls for
    those services go to its own specialists, the others to the centre's queues."""
    from call_router import tenants

    def apply(session: Session) -> dict[str, Any]:
        tenants.set_tenant_queues(session, slug, tenants.parse_services(services))
        return tenant_dict(session, tenants.require_tenant(session, slug))

    info = _run(apply)
    _apply_to_asterisk(info)

    def text(i: dict[str, Any]) -> str:
        own = ", ".join(f"{svc} ({q})" for svc, q in i["queues"].items()) or "none"
        return f"tenant {i['slug']}: own queues {own}"

    emit(info, as_json, text)


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

    emit(rows, as_json, text)


@tenants_app.command("show")
def tenants_show(slug: Slug, as_json: JsonOpt = False) -> None:
    """One tenant: its numbers, operators and calls."""
    from call_router import tenants

    info = _run(lambda s: tenant_dict(s, tenants.require_tenant(s, slug)))

    def text(i: dict[str, Any]) -> str:
        return "\n".join(
            [
                f"tenant   {i['slug']} ({i['name']})",
                f"numbers  {', '.join(i['numbers']) or '-'}",
                f"queues   {', '.join(i['queues'].values()) or CENTRE_QUEUES_ONLY}",
                f"operators {i['operators']}, calls {i['calls']}, buildings {i['buildings']}",
            ]
        )

    emit(info, as_json, text)


@tenants_app.command("sla")
def tenants_sla(
    slug: Slug,
    seconds: Annotated[
        int | None, typer.Option(help="Answered within this many seconds (default: centre's).")
    ] = None,
    target: Annotated[
        float | None,
        typer.Option(help="For this share of calls, 0-1, e.g. 0.9 (default: centre's)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Set a tenant's own service-level target, used by its wallboard and reports; without
    --seconds/--target it goes back to the centre's (HOTLINE_SERVICE_LEVEL_SECONDS/_TARGET)."""
    from call_router import tenant_boards, tenants

    def apply(session: Session) -> dict[str, Any]:
        tenant_boards.set_service_level(session, slug, seconds, target)
        return tenant_dict(session, tenants.require_tenant(session, slug))

    info = _run(apply)

    def text(i: dict[str, Any]) -> str:
        level = i["service_level"]
        secs = level["seconds"] if level["seconds"] is not None else "centre's"
        share = f"{level['target']:.0%}" if level["target"] is not None else "centre's"
        return f"tenant {i['slug']}: service level {share} within {secs} s"

    emit(info, as_json, text)


@tenants_app.command("menu")
def tenants_menu(
    slug: Slug,
    what: Annotated[
        str | None,
        typer.Argument(help="calendar | prompts | a flow's name (hotline, meters) to override."),
    ] = None,
    remove: Annotated[
        bool, typer.Option("--remove", help="Drop that override: the centre's applies again.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """A tenant's own menus (ivr_flows/tenants/SLUG/): without WHAT, what it overrides; with
    WHAT, start an override from the centre's file (to edit), or --remove it. Then
    `hotline flows check`, `hotline prompts build`; the server reloads by itself."""
    from call_router import tenants
    from call_router.flows import tenant_files

    settings = get_settings()
    _run(lambda s: tenants.require_tenant(s, slug).id)
    try:
        if what is not None:
            tenant_files.change(settings.flows_dir, slug, what, remove=remove)
        info = tenant_files.overrides(settings.flows_dir, slug)
    except tenant_files.MenuFileError as err:
        raise fail(f"error: {err}", 2) from None

    def text(i: dict[str, Any]) -> str:
        return "\n".join(
            [
                f"tenant   {i['tenant']}  ({i['folder']})",
                f"calendar {'own' if i['calendar'] else 'the centre' + chr(39) + 's'}",
                f"prompts  {', '.join(i['prompts']) or '-'}",
                f"flows    {', '.join(i['flows']) or '-'}",
            ]
        )

    emit(info, as_json, text)


@numbers_app.command("add")
def numbers_add(
    number: Annotated[str, typer.Argument(help="The number as dialled: digits, + * # allowed.")],
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
    # The trunk answers the number from now on (asterisk_conf extensions.conf [from-pstn]).
    _apply_to_asterisk(info)
    emit(info, as_json, lambda i: f"number {i['number']} -> {i['tenant'] or 'the centre'}")


@numbers_app.command("list")
def numbers_list(as_json: JsonOpt = False) -> None:
    """List dialled numbers and whose they are."""
    from call_router import tenants

    rows = _run(lambda s: [_number_dict(n, tenants.slugs(s)) for n in tenants.list_numbers(s)])
    emit(
        rows,
        as_json,
        lambda items: "\n".join(f"{i['number']:<16} {i['tenant'] or 'centre'}" for i in items),
    )


# --- buildings ---------------------------------------------------------------------------------


@buildings_app.command("import")
def buildings_import(
    file: Annotated[
        typer.FileBinaryRead, typer.Argument(help="CSV: street,house[,code]; - = stdin")
    ],
    tenant: Annotated[str, typer.Option(help="The tenant (slug) that serves them.")],
    as_json: JsonOpt = False,
) -> None:
    """Import a tenant's buildings from CSV (street,house[,code]; `;` also separates; an
    optional header line). A house code (1-8 digits) is what residents key in the menu; it
    is unique across the centre. Every line is checked first: any bad line refuses the whole
    file (each bad line listed), nothing is half-imported. An address already imported for
    the tenant takes the file's code."""
    from call_router import buildings, tenants

    data = file.read(buildings.MAX_FILE_BYTES + 1)

    def load(session: Session) -> dict[str, Any]:
        result = buildings.import_buildings(session, tenant, buildings.parse_csv(data))
        slugs = tenants.slugs(session)
        return {
            "tenant": tenant,
            "added": result.added,
            "updated": result.updated,
            "buildings": [buildings.building_dict(b, slugs) for b in result.buildings],
        }

    info = _run(load)
    emit(
        info,
        as_json,
        lambda i: f"{i['added']} buildings added, {i['updated']} updated for {i['tenant']}",
    )


@buildings_app.command("list")
def buildings_list(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's (slug).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List buildings with their house codes."""
    from call_router import buildings, tenants

    rows = _run(
        lambda s: [
            buildings.building_dict(b, tenants.slugs(s))
            for b in buildings.list_buildings(s, tenant)
        ]
    )

    def text(items: list[dict[str, Any]]) -> str:
        return "\n".join(
            f"{i['id']:>6} {i['tenant']:<20} {i['code'] or '-':>8}  {i['street']}, {i['house']}"
            for i in items
        )

    emit(rows, as_json, text)


@buildings_app.command("phone")
def buildings_phone(
    phone: Annotated[
        str, typer.Argument(help="The resident's phone number (normalised to the country's).")
    ],
    building: Annotated[int, typer.Option(help="The building's id (`hotline buildings list`).")],
    as_json: JsonOpt = False,
) -> None:
    """Register a resident's phone at a building: their calls to the centre's numbers go to
    the building's tenant without asking."""
    from call_router import buildings, tenants

    country = get_settings().country_code

    def register(session: Session) -> dict[str, Any]:
        row = buildings.register_phone(session, phone, building, country)
        return {
            "phone": row.phone,
            "building": row.building_id,
            "tenant": tenants.slugs(session).get(row.tenant_id),
        }

    info = _run(register)
    emit(info, as_json, lambda i: f"phone {i['phone']} -> building {i['building']} ({i['tenant']})")
