"""`hotline retention sweep`: delete old voicemail, recordings, utterances and rotated Asterisk
logs now (call_router/retention.py); the router does the same once a day."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from call_router import retention
from call_router.ami_client import AmiLink
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import Settings, get_settings
from hotline.cli_support import open_database

app = typer.Typer(help="Retention of recordings and logs.", no_args_is_help=True)


async def sweep_once(settings: Settings, db: Database) -> retention.SweepReport:
    """One sweep with a link of its own, closed at the end (a command is a process of its own:
    nothing to share), as the router's `hotline-originate` user."""
    link = AmiLink(settings, role="originate")
    try:
        return await retention.sweep_now(settings, db, utcnow(), ami=link, rotate=True)
    finally:
        await link.close()


@app.command("sweep")
def sweep(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Delete what is older than its retention setting; mark the calls it belonged to."""
    settings = get_settings()
    db = open_database(settings)
    try:
        # Asked for now: Asterisk's logs are rotated now too, however recently they were.
        report = asyncio.run(sweep_once(settings, db))
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps({**report.as_dict(), "limits_days": retention.limits(settings)}))
    else:
        for kind, count in report.removed.items():
            days = retention.limits(settings)[kind]
            keep = f"kept {days} days" if days else "kept forever"
            typer.echo(f"{kind:<11} {count} file(s) removed ({keep})")
        typer.echo(f"{report.calls_marked} call(s) marked 'deleted by retention'")
        for error in report.errors:
            typer.secho(f"could not remove {error}", err=True, fg=typer.colors.RED)
    if report.errors:
        raise typer.Exit(1)
