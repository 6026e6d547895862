"""`hotline staffing`: operators needed per quarter hour of the coming week (Erlang C, capped by
occupancy), from the last N weeks of the call log, beside those who were logged in then
(call_router/staffing.py)."""

from __future__ import annotations

import csv
import json
import sys
from typing import Annotated

import typer

from call_router import staffing, staffing_store, tenant_wall
from call_router.callbacks import hotline_zone
from call_router.erlang import ErlangError, target_from_options
from call_router.models import utcnow
from call_router.settings import get_settings
from call_router.tenants import TenantError, require_tenant
from hotline.cli_support import open_database

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def staffing_command(
    target_asa: Annotated[
        float | None, typer.Option("--target-asa", help="Average wait at most this many seconds.")
    ] = None,
    target_sl: Annotated[
        str | None,
        typer.Option("--target-sl", help="PERCENT/SECONDS answered within, e.g. 80/20."),
    ] = None,
    weeks: Annotated[int, typer.Option("--weeks", help="History to learn from, in weeks.")] = 4,
    max_occupancy: Annotated[
        float, typer.Option("--max-occupancy", help="Busiest share of time an operator may be.")
    ] = 0.85,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="Only this tenant's calls (slug, or 'centre').")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
    as_csv: Annotated[
        bool, typer.Option("--csv", help="CSV on stdout, one quarter hour a line.")
    ] = False,
) -> None:
    """Operators needed per quarter hour next week vs those logged in over the last weeks.

    Neither --target-asa nor --target-sl: the configured service level
    (HOTLINE_SERVICE_LEVEL_TARGET within HOTLINE_SERVICE_LEVEL_SECONDS)."""
    settings = get_settings()
    try:
        target = target_from_options(
            target_asa,
            target_sl,
            max_occupancy,
            (settings.service_level_target, float(settings.service_level_seconds)),
        )
    except ErlangError as exc:
        raise typer.BadParameter(str(exc)) from exc
    db = open_database(settings)
    try:
        with db.session() as session:
            if tenant is not None:
                if tenant not in ("", tenant_wall.CENTRE):
                    try:
                        require_tenant(session, tenant)  # a typo: said, not an empty plan
                    except TenantError as exc:
                        raise typer.BadParameter(str(exc), param_hint="--tenant") from exc
                tenant_wall.set_scope(session, tenant_wall.filter_scope(session, tenant))
            try:
                window, rows = staffing_store.week_forecast(
                    session,
                    utcnow(),
                    weeks,
                    hotline_zone(settings),
                    target,
                    settings.wrapup_seconds,
                )
            except ErlangError as exc:
                raise typer.BadParameter(str(exc)) from exc
    finally:
        db.dispose()
    if as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\r\n")
        writer.writerows(staffing.csv_rows(rows))
        return
    if as_json:
        typer.echo(json.dumps(staffing.plan_json(window, target, rows)))
        return
    busy = [row for row in rows if row.needed or row.logged_in]
    typer.echo(
        f"History {window.start:%Y-%m-%d} .. {window.end:%Y-%m-%d} ({weeks} weeks); "
        f"{len(busy)} of {len(rows)} quarter hours need or had operators."
    )
    typer.echo(
        f"{'day':<14} {'time':>5} {'calls':>6} {'AHT s':>6} {'need':>5} {'in':>5} {'gap':>6}"
    )
    for row in busy:
        typer.echo(
            f"{row.day.isoformat()} {WEEKDAYS[row.weekday]} {row.time:>5} {row.calls:>6.1f}"
            f" {row.handle_seconds:>6.0f} {row.needed:>5} {row.logged_in:>5.1f} {row.gap:>6.1f}"
        )
