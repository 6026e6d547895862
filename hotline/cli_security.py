"""`hotline security`: SIP source addresses banned for failed authentications, and lifting them."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated

import typer

from call_router import sip_bans
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import get_settings

app = typer.Typer(help="SIP brute-force bans: list and lift.", no_args_is_help=True)


def _db() -> Database:
    db = Database(get_settings().db_url)
    db.upgrade()
    return db


@app.command("bans")
def bans(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """The addresses banned now (they expire on their own)."""
    db = _db()
    with db.session() as session:
        rows = [sip_bans.ban_dict(ban) for ban in sip_bans.active_bans(session, utcnow())]
    db.dispose()
    if as_json:
        typer.echo(json.dumps(rows))
        return
    if not rows:
        typer.echo("no banned addresses")
    for row in rows:
        typer.echo(
            f"{row['address']:<39} until {row['expires_at']}  ({row['failures']} x {row['reason']})"
        )


@app.command("unban")
def unban(address: Annotated[str, typer.Argument(help="The banned IP address.")]) -> None:
    """Lift an address's ban now; Asterisk accepts it again at once."""
    from hotline.cli_asterisk import apply_bans

    try:
        normal = str(ipaddress.ip_address(address.strip()))
    except ValueError:
        typer.secho(f"error: {address!r} is not an IP address", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    db = _db()
    with db.session() as session:
        lifted = sip_bans.lift(session, normal, by="cli", now=utcnow())
    db.dispose()
    if not lifted:
        typer.secho(f"error: {normal} is not banned", err=True, fg=typer.colors.RED)
        raise typer.Exit(1)
    apply_bans(get_settings())
    typer.echo(f"{normal} unbanned")
