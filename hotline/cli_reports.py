"""`hotline reports rollup`: pre-aggregate the closed quarter hours the reports read
(call_router/report_rollups.py). The report does it lazily too; run this after an upgrade, after
changing the service-level threshold, or from cron, so no visitor pays for a first pass."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from call_router import report_rollups, reports
from call_router.db import Database
from call_router.models import utcnow
from call_router.settings import get_settings

app = typer.Typer(help="Reports: pre-aggregated quarter hours.", no_args_is_help=True)

# The longest report range (dashboard/routes/reports.py MAX_DAYS) plus a day of time zones.
DEFAULT_DAYS = 93


def _moment(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("YYYY-MM-DD or an ISO date-time", param_hint="--since") from exc
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@app.command("rollup")
def rollup(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            help=f"Start here (a date is UTC midnight); default {DEFAULT_DAYS} days ago.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """Roll up every closed quarter hour since --since that is not rolled up yet."""
    settings = get_settings()
    now = utcnow()
    start = _moment(since) if since else now - timedelta(days=DEFAULT_DAYS)
    db = Database(settings.db_url)
    db.upgrade()
    try:
        first, end = reports.slot_of(start), reports.slot_of(now) + 1
        threshold = settings.service_level_seconds
        rolled = report_rollups.roll_up(db.engine, first, end, threshold=threshold, now=now)
        with db.session() as session:
            closed = report_rollups.closed_end(session, now, threshold)
            covered = len(report_rollups.covered_slots(session, first, end, threshold))
    finally:
        db.dispose()
    result = {
        "rolled_up": rolled,
        "covered": covered,
        "since": reports.slot_start(first).isoformat(),
        "closed_until": reports.slot_start(closed).isoformat(),
    }
    if as_json:
        typer.echo(json.dumps(result))
        return
    typer.echo(
        f"{rolled} quarter hours rolled up; {covered} rolled up from {result['since']}"
        f" to {result['closed_until']} (later ones are still open)"
    )
