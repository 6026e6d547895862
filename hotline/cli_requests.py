"""`hotline requests …`, `hotline crews …` and `hotline open311 keys …`: service requests from
the command line. Registered by hotline/cli.py; the rules are in call_router/service_requests.py
and call_router/request_lifecycle.py. Every `--json` prints only JSON on stdout."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from hotline.cli_session import run_in_session
from hotline.cli_support import JsonOpt, emit

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

requests_app = typer.Typer(help="Service requests: jobs for repair crews.", no_args_is_help=True)
crews_app = typer.Typer(help="Repair crews and contractors.", no_args_is_help=True)
open311_app = typer.Typer(help="The Open311 GeoReport v2 API.", no_args_is_help=True)
keys_app = typer.Typer(help="Open311 API keys (stored hashed).", no_args_is_help=True)
open311_app.add_typer(keys_app, name="keys")

T = TypeVar("T")
TenantOpt = Annotated[
    str | None, typer.Option("--tenant", help="The tenant (slug); without it, the centre's.")
]
RequestNumber = Annotated[
    str, typer.Argument(help="The request number residents are told, e.g. 1042.")
]
NoteOpt = Annotated[str | None, typer.Option(help="Free text kept in the request's history.")]
ACTOR = "cli"


def _run(action: Callable[[Session], T]) -> T:
    """`action(session)` in one transaction; a refused input exits 2 with its message."""
    from call_router.request_lifecycle import LifecycleError
    from call_router.tenants import TenantError

    return run_in_session(action, (LifecycleError, TenantError))


def _tenant_id(session: Session, slug: str | None) -> int | None:
    from call_router.tenants import require_tenant

    return require_tenant(session, slug).id if slug else None


def _line(i: dict[str, Any]) -> str:
    flat = f"-{i['flat']}" if i["flat"] else ""
    crew = i["crew"]["name"] if i["crew"] else "-"
    late = " OVERDUE" if i["overdue"] else ""
    return (
        f"{i['number']:<7} {i['state']:<22} {i['category']:<12} "
        f"{i['street']} {i['house']}{flat}  crew: {crew}{late}"
    )


def _detail(i: dict[str, Any]) -> str:
    lines = [
        _line(i),
        f"  priority {i['priority']}, deadline {i['sla_deadline']}, reports {i['reports']}",
        f"  caller {i['caller_number'] or '-'} {i['caller_name'] or ''}".rstrip(),
        f"  {i['description']}",
    ]
    for h in i.get("history", []):
        move = f"{h['from_state'] or ''}->{h['to_state']}" if h["to_state"] else ""
        lines.append(f"  {h['at']} {h['actor']}: {h['action']} {move} {h['note'] or ''}".rstrip())
    return "\n".join(lines)


@requests_app.command("list")
def requests_list(
    state: Annotated[list[str] | None, typer.Option(help="Only these states (repeat).")] = None,
    category: Annotated[
        str | None, typer.Option(help="Only this category's (code, service_categories.yaml).")
    ] = None,
    crew: Annotated[int | None, typer.Option(help="Only this crew's (id).")] = None,
    overdue: Annotated[bool, typer.Option(help="Only open requests past their deadline.")] = False,
    caller: Annotated[str | None, typer.Option(help="Only this caller number's.")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=1000, help="At most this many requests, 1-1000.")
    ] = 100,
    as_json: JsonOpt = False,
) -> None:
    """List requests, newest first."""
    from call_router import request_lifecycle as life
    from call_router import request_reads, request_views
    from call_router.models import utcnow

    unknown = [s for s in state or () if s not in life.STATES]
    if unknown:
        raise typer.BadParameter(
            f"{', '.join(unknown)}: the states are {', '.join(life.STATES)}", param_hint="--state"
        )

    now = utcnow()
    where = request_reads.RequestFilter(
        states=state or (),
        category=category,
        crew_id=crew,
        caller_number=caller,
        overdue_at=now if overdue else None,
    )
    rows = _run(
        lambda s: [
            request_views.request_dict(r, now=now)
            for r in request_reads.list_requests(s, where, limit=limit)
        ]
    )
    emit(rows, as_json, lambda items: "\n".join(_line(i) for i in items) or "no requests")


@requests_app.command("show")
def requests_show(number: RequestNumber, as_json: JsonOpt = False) -> None:
    """One request with its calls and full history."""
    from call_router import request_views
    from call_router import service_requests as store

    info = _run(lambda s: request_views.request_dict(store.get_request(s, number), detail=True))
    emit(info, as_json, _detail)


@requests_app.command("create")
def requests_create(
    category: Annotated[str, typer.Option(help="A category code (service_categories.yaml).")],
    street: Annotated[str, typer.Option(help="The street of the address.")],
    house: Annotated[str, typer.Option(help="The house number, e.g. 12 or 12/2.")],
    flat: Annotated[str | None, typer.Option(help="The flat (apartment) number.")] = None,
    district: Annotated[
        str | None, typer.Option(help="The district (a crew must cover it to be assigned).")
    ] = None,
    lat: Annotated[
        float | None, typer.Option(help="Latitude, decimal degrees (-90 to 90).")
    ] = None,
    long: Annotated[
        float | None, typer.Option(help="Longitude, decimal degrees (-180 to 180).")
    ] = None,
    description: Annotated[str, typer.Option(help="What is wrong, in the caller's words.")] = "",
    caller_number: Annotated[
        str | None, typer.Option(help="The caller's phone number, to call back.")
    ] = None,
    caller_name: Annotated[str | None, typer.Option(help="The caller's name.")] = None,
    priority: Annotated[str, typer.Option(help="normal, high or emergency.")] = "normal",
    call: Annotated[int | None, typer.Option(help="The call (id) it came from.")] = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a request; an open one for the same address and category takes it instead."""
    from call_router import request_lifecycle as life
    from call_router import request_views
    from call_router import service_requests as store

    new = store.NewRequest(
        category=category,
        street=street,
        house=house,
        flat=flat,
        district=district,
        lat=lat,
        long=long,
        description=description,
        caller_number=caller_number,
        caller_name=caller_name,
        priority=priority,
        source="cli",
    )

    def create(session: Session) -> dict[str, Any]:
        created = store.create_request(
            session,
            new,
            categories=life.load_categories(),
            actor=ACTOR,
            tenant_id=_tenant_id(session, tenant),
            call_id=call,
        )
        return {**request_views.request_dict(created.request), "attached": created.attached}

    def text(i: dict[str, Any]) -> str:
        verb = "already reported: attached to" if i["attached"] else "created"
        return f"{verb} request {i['number']} (deadline {i['sla_deadline']})"

    emit(_run(create), as_json, text)


@requests_app.command("assign")
def requests_assign(
    numbers: Annotated[list[str], typer.Argument(help="One request number, or several.")],
    crew: Annotated[int, typer.Option(help="The crew's id (hotline crews list).")],
    note: NoteOpt = None,
    force: Annotated[bool, typer.Option(help="Even if the crew does not take it.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Give a request to a crew; several at once: each is assigned or refused on its own
    (`{"assigned": [...], "refused": [...]}`; exit 2 if any was refused)."""
    from call_router import request_assignment, request_views

    if len(numbers) == 1:
        info = _run(
            lambda s: request_views.request_dict(
                request_assignment.assign(s, numbers[0], crew, actor=ACTOR, note=note, force=force)
            )
        )
        emit(info, as_json, lambda i: f"request {i['number']} assigned to {i['crew']['name']}")
        return

    def bulk(session: Session) -> dict[str, Any]:
        picks = [(number, None) for number in numbers]
        done = request_assignment.assign_many(
            session, picks, crew, actor=ACTOR, note=note, force=force
        )
        return request_views.bulk_dict(done)

    def text(i: dict[str, Any]) -> str:
        lines = [f"request {r['number']} assigned to {r['crew']['name']}" for r in i["assigned"]]
        lines += [f"request {r['number']} NOT assigned: {r['message']}" for r in i["refused"]]
        return "\n".join(lines)

    result = _run(bulk)
    emit(result, as_json, text)
    if result["refused"]:
        raise typer.Exit(2)


@requests_app.command("status")
def requests_status(
    number: RequestNumber,
    state: Annotated[
        str, typer.Argument(help="The new state, e.g. in_progress, done, closed, duplicate.")
    ],
    note: NoteOpt = None,
    duplicate_of: Annotated[str | None, typer.Option(help="For `duplicate`: the original.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Move a request to another state (the allowed moves: request_lifecycle.TRANSITIONS)."""
    from call_router import request_views
    from call_router import service_requests as store

    info = _run(
        lambda s: request_views.request_dict(
            store.change_state(s, number, state, actor=ACTOR, note=note, duplicate_of=duplicate_of)
        )
    )
    emit(info, as_json, lambda i: f"request {i['number']} is now {i['state']}")


@crews_app.command("add")
def crews_add(
    name: Annotated[str, typer.Argument(help="The crew's or contractor's name.")],
    category: Annotated[
        list[str] | None, typer.Option(help="A category it takes (repeat); none: all.")
    ] = None,
    district: Annotated[
        list[str] | None, typer.Option(help="A district it covers (repeat); none: all.")
    ] = None,
    phone: Annotated[str | None, typer.Option(help="The crew's phone number.")] = None,
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Add a crew or contractor."""
    from call_router import request_crews, request_views
    from call_router import request_lifecycle as life

    info = _run(
        lambda s: request_views.crew_dict(
            request_crews.add_crew(
                s,
                name,
                categories=category or [],
                districts=district or [],
                known_categories=life.load_categories(),
                phone=phone,
                tenant_id=_tenant_id(s, tenant),
            )
        )
    )
    emit(info, as_json, lambda i: f"crew {i['id']} {i['name']} added")


@crews_app.command("list")
def crews_list(as_json: JsonOpt = False) -> None:
    """List crews."""
    from call_router import request_crews, request_views

    rows = _run(lambda s: [request_views.crew_dict(c) for c in request_crews.list_crews(s)])

    def text(items: list[dict[str, Any]]) -> str:
        return "\n".join(
            f"{i['id']:<4} {i['name']:<24} categories: {', '.join(i['categories']) or 'all'}"
            f"  districts: {', '.join(i['districts']) or 'all'}"
            for i in items
        )

    emit(rows, as_json, lambda items: text(items) or "no crews")


@crews_app.command("link")
def crews_link(
    crew: Annotated[int, typer.Argument(help="The crew's id.")],
    username: Annotated[str, typer.Argument(help="A crew-role dashboard account.")],
    as_json: JsonOpt = False,
) -> None:
    """Let a crew account work as this crew: it sees and adds the photos of its jobs only."""
    from call_router import request_attachments as files

    def link(session: Session) -> dict[str, Any]:
        files.link_member(session, crew, username)
        return {"crew_id": crew, "username": username}

    emit(_run(link), as_json, lambda i: f"{i['username']} works as crew {i['crew_id']}")


def _key_dict(row: Any) -> dict[str, Any]:
    return {
        "name": row.name,
        "created_at": row.created_at.isoformat(),
        "revoked_at": row.revoked_at.isoformat() if row.revoked_at else None,
        "last_used_at": row.last_used_at.isoformat() if row.last_used_at else None,
    }


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option(help="Who uses it (a city portal, a 311 app).")],
    tenant: TenantOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an API key for an Open311 client. The key is printed once, then only its hash
    is kept."""
    from call_router import open311_keys

    def create(session: Session) -> dict[str, Any]:
        plain, row = open311_keys.create_key(session, name, tenant_id=_tenant_id(session, tenant))
        return {"api_key": plain, **_key_dict(row)}

    info = _run(create)
    if as_json:
        typer.echo(json.dumps({"api_key": info["api_key"], "name": info["name"]}))
    else:
        typer.echo(f"Open311 key for {info['name']} (shown once, keep it safe):")
        typer.echo(info["api_key"])


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False) -> None:
    """List the keys (never the keys themselves)."""
    from call_router import open311_keys

    rows = _run(lambda s: [_key_dict(k) for k in open311_keys.list_keys(s)])

    def text(items: list[dict[str, Any]]) -> str:
        return "\n".join(
            f"{i['name']:<32} created {i['created_at']}"
            + (f"  REVOKED {i['revoked_at']}" if i["revoked_at"] else "")
            for i in items
        )

    emit(rows, as_json, lambda items: text(items) or "no keys")


@keys_app.command("revoke")
def keys_revoke(
    name: Annotated[str, typer.Argument(help="The key's name (see `open311 keys list`).")],
    as_json: JsonOpt = False,
) -> None:
    """Revoke a key: its client is refused (403) from now on."""
    from call_router import open311_keys

    info = _run(lambda s: _key_dict(open311_keys.revoke_key(s, name)))
    emit(info, as_json, lambda i: f"key {i['name']} revoked")
