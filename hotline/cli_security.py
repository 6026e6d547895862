"""`hotline security`: SIP source addresses banned for failed authentications, and lifting them."""

from __future__ import annotations

import ipaddress
import json
from typing import Annotated

import typer

from call_router import sip_bans
from call_router.models import utcnow
from call_router.settings import get_settings
from hotline.cli_session import run_in_session
from hotline.cli_support import JsonOpt, fail, open_database

app = typer.Typer(help="SIP brute-force bans: list and lift.", no_args_is_help=True)


@app.command("bans")
def bans(as_json: JsonOpt = False) -> None:
    """The addresses banned now (they expire on their own)."""
    rows = run_in_session(
        lambda session: [sip_bans.ban_dict(ban) for ban in sip_bans.active_bans(session, utcnow())]
    )
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
        raise fail(f"error: {address!r} is not an IP address", 2) from None
    db = open_database(get_settings())
    with db.session() as session:
        lifted = sip_bans.lift(session, normal, by="cli", now=utcnow())
    db.dispose()
    if not lifted:
        raise fail(f"error: {normal} is not banned")
    apply_bans(get_settings())
    typer.echo(f"{normal} unbanned")
