"""`hotline reports rollup`: pre-aggregate the closed quarter hours the reports read
(call_router/report_rollups.py). The report does it lazily too; run this after an upgrade, after
changing the service-level threshold, or from cron, so no visitor pays for a first pass.

`hotline reports agents`: each operator's log-ins, pauses, ready / talk / wrap-up time, calls
answered and missed, occupancy, per local day and over the period (call_router/agent_sessions.py;
the same figures as /reports/agents and /api/reports/agents)."""

from __future__ import annotations

import json
import sys
from datetime import date, datetime, timedelta
from typing import Annotated

import typer

from call_router import (
    agent_sessions,
    agent_sessions_store,
    date_range,
    report_rollups,
    reports,
)
from call_router.callbacks import hotline_zone
from call_router.models import as_utc, utcnow
from call_router.settings import get_settings
from dashboard import csv_export
from hotline.cli_support import open_database

app = typer.Typer(
    help="Reports: pre-aggregated quarter hours, agent sessions.", no_args_is_help=True
)

# The longest report range (dashboard/routes/reports.py MAX_DAYS) plus a day of time zones.
DEFAULT_DAYS = 93


def _moment(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("YYYY-MM-DD or an ISO date-time", param_hint="--since") from exc
    if not date_range.usable(parsed):
        raise typer.BadParameter(f"a date {date_range.RANGE_TEXT}", param_hint="--since")
    return as_utc(parsed)


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
    db = open_database(settings)
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


# The longest agent-session report (as the dashboard's, dashboard/routes/agents_report.py).
MAX_AGENT_DAYS = 93


def _day(value: str | None, default: date, hint: str) -> date:
    if not value:
        return default
    try:
        day = date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter("YYYY-MM-DD", param_hint=hint) from exc
    if not date_range.usable(day):
        raise typer.BadParameter(f"a date {date_range.RANGE_TEXT}", param_hint=hint)
    return day


@app.command("agents")
def agents(
    since: Annotated[
        str | None, typer.Option("--since", help="First local day (YYYY-MM-DD); default today.")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="Last local day, included; default --since.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV: the days, then the period.")] = False,
) -> None:
    """Agent sessions: per operator and day, and over the period."""
    settings = get_settings()
    zone = hotline_zone(settings)
    today = datetime.now(zone).date()
    first = _day(since, today, "--since")
    last = _day(until, first if since else today, "--until")
    if first > last:
        first, last = last, first
    if (last - first).days >= MAX_AGENT_DAYS:
        raise typer.BadParameter(f"at most {MAX_AGENT_DAYS} days", param_hint="--until")
    db = open_database(settings)
    try:
        with db.session() as session:
            per_day, period = agent_sessions_store.agent_report(
                session, first, last, zone, wrapup_seconds=settings.wrapup_seconds, now=utcnow()
            )
    finally:
        db.dispose()
    days = agent_sessions.active(per_day)
    if as_json:
        result = {
            "date_from": first.isoformat(),
            "date_to": last.isoformat(),
            "period": [f.as_dict() for f in period],
            "days": [f.as_dict() for f in days],
        }
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    if as_csv:
        rows = agent_sessions.csv_rows([*days, *period])
        for chunk in csv_export.encode_rows([csv_export.safe_cell(c) for c in r] for r in rows):
            sys.stdout.write(chunk)
        return
    typer.echo(f"Agent sessions {first} .. {last}")
    for fig in period:
        occupancy = "-" if fig.occupancy is None else f"{fig.occupancy:.0%}"
        typer.echo(
            f"{fig.name} ({fig.login}): logged in {_hms(fig.logged_in_seconds)},"
            f" paused {_hms(fig.paused_seconds)} in {fig.pauses},"
            f" ready {_hms(fig.ready_seconds)}, talk {_hms(fig.talk_seconds)},"
            f" answered {fig.answered}, missed {fig.missed}, occupancy {occupancy}"
        )


def _hms(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"
