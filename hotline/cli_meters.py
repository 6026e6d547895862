"""`hotline meters`: meter readings phoned in (ivr_flows/meters.yaml), per payer, with history."""

from __future__ import annotations

import csv
import dataclasses
import json
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer
from sqlalchemy.orm import Session

from call_router import meter_store, payer_accounts, tenant_wall
from call_router.flows.conditions import resolve_timezone
from call_router.meter_models import MeterReading
from call_router.meter_readings import METER_KINDS, MeterKind, meter_kind
from call_router.models import utcnow
from call_router.settings import get_settings
from call_router.tenants import require_tenant
from hotline.cli_session import run_in_session
from hotline.cli_support import fail, open_database

app = typer.Typer(
    help="Meter readings submitted by phone; payer accounts from billing.", no_args_is_help=True
)
T = TypeVar("T")

PayerOption = Annotated[str, typer.Option("--payer", help="The payer code (digits).")]
MeterOption = Annotated[
    str | None, typer.Option("--meter", help=f"One of: {', '.join(METER_KINDS)}.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON list on stdout.")]


def _kind(meter: str | None) -> MeterKind | None:
    if meter is None:
        return None
    try:
        return meter_kind(meter)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--meter") from exc


def _row(reading: MeterReading) -> dict[str, Any]:
    return {
        "id": reading.id,
        "payer": reading.payer_code,
        "meter": reading.meter,
        "value": reading.value,
        "status": reading.status,
        "source": reading.source,
        "caller": reading.caller_number,
        "call_id": reading.call_id,
        "submitted_at": reading.submitted_at.isoformat(),
        "changed_at": reading.changed_at.isoformat() if reading.changed_at else None,
        "replaced_by": reading.replaced_by_id,
    }


def _print(rows: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    if not rows:
        typer.echo("no readings")
    for r in rows:
        typer.echo(
            f"{r['submitted_at'][:16]}  {r['meter']:<10} {r['value']:>10}  {r['status']:<9} "
            f"{r['source']} {r['caller'] or ''}"
        )


def _readings(payer: str, meter: str | None, *, all_rows: bool) -> list[dict[str, Any]]:
    kind = _kind(meter)
    db = open_database(get_settings())
    try:
        with db.session() as session:
            try:
                if all_rows:
                    rows = meter_store.history(session, payer, kind)
                else:
                    kinds = [kind] if kind else list(METER_KINDS)
                    found = [meter_store.last_reading(session, payer, k) for k in kinds]
                    rows = [r for r in found if r is not None]
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--payer") from exc
            return [_row(r) for r in rows]
    finally:
        db.dispose()


@app.command("list")
def list_readings(
    payer: PayerOption, meter: MeterOption = None, as_json: JsonOption = False
) -> None:
    """The current reading of each meter of the payer."""
    _print(_readings(payer, meter, all_rows=False), as_json)


@app.command("history")
def history(payer: PayerOption, meter: MeterOption = None, as_json: JsonOption = False) -> None:
    """Every reading of the payer, newest first, corrected and deleted ones included."""
    _print(_readings(payer, meter, all_rows=True), as_json)


@app.command("add")
def add(
    payer: PayerOption,
    meter: Annotated[str, typer.Option("--meter", help=f"One of: {', '.join(METER_KINDS)}.")],
    value: Annotated[str, typer.Argument(help="The reading, digits only.")],
    as_json: JsonOption = False,
) -> None:
    """Enter a reading by hand (e.g. from a paper form); checked by the same rules."""
    kind = _kind(meter)
    assert kind is not None
    db = open_database(get_settings())
    try:
        with db.session() as session:
            try:
                stored = meter_store.submit(session, payer, kind, value, utcnow(), source="cli")
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--payer") from exc
            if stored.reading_id is None:
                check = stored.check
                detail = f" (last {check.last}, at most {check.limit})" if check.limit else ""
                raise fail(f"refused: {check.problem}{detail}")
            row = session.get(MeterReading, stored.reading_id)
            assert row is not None
            info = _row(row)
    finally:
        db.dispose()
    typer.echo(json.dumps(info, ensure_ascii=False) if as_json else f"reading {info['id']} stored")


def _settled(action: Callable[[Session], T]) -> T:
    """`action(session)` in one transaction; bad input exits 2 with its message."""
    return run_in_session(action, (ValueError,))  # CsvFileError, TenantError, a bad month


@app.command("import")
def import_accounts(
    file: Annotated[
        typer.FileBinaryRead,
        typer.Argument(help=f"CSV: {','.join(payer_accounts.HEADER)}; - = stdin"),
    ],
    tenant: Annotated[
        str | None,
        typer.Option(help="The tenant (slug) whose accounts they are; default: the centre."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Import payer accounts and their meters from the billing system's CSV.

    One meter a line (an account with several meters on several lines, one with none on a
    line with the meter columns empty); `;` also separates; an optional header line. Every line
    is checked first: any bad line refuses the whole file, nothing is half-imported. Once any
    account is imported, the meters menu accepts only imported payer codes, and only their
    meters; billing's last reading is the baseline a phoned reading is checked against."""
    data = file.read(payer_accounts.MAX_FILE_BYTES + 1)

    def load(session: Session) -> dict[str, Any]:
        tenant_id = require_tenant(session, tenant).id if tenant else None
        result = payer_accounts.import_accounts(session, payer_accounts.parse_csv(data), tenant_id)
        return {
            "tenant": tenant,
            "accounts_added": result.accounts_added,
            "accounts_updated": result.accounts_updated,
            "meters_added": result.meters_added,
            "meters_updated": result.meters_updated,
            "without_check_digit": result.without_check_digit,
        }

    info = _settled(load)
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
        return
    typer.echo(
        f"accounts: {info['accounts_added']} added, {info['accounts_updated']} updated; "
        f"meters: {info['meters_added']} added, {info['meters_updated']} updated"
    )
    if info["without_check_digit"]:
        typer.secho(
            f"warning: {len(info['without_check_digit'])} payer codes have no valid check digit "
            "(e.g. " + ", ".join(info["without_check_digit"][:3]) + "): the meters flow "
            "(`checksum: luhn` in ivr_flows/meters.yaml) refuses them; remove that line if "
            "your billing's codes carry no check digit",
            err=True,
            fg=typer.colors.YELLOW,
        )


@app.command("export")
def export_month(
    month: Annotated[str, typer.Option("--month", help="YYYY-MM, in the centre's time zone.")],
    tenant: Annotated[
        str | None, typer.Option(help="Only this tenant's accounts (slug); default: all.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """The month's readings for billing, as CSV on stdout (or --json): each meter's last
    reading of the month that is still current, with the account's address, the meter's
    serial and billing's previous reading. Text cells are safe to open in a spreadsheet."""
    settings = get_settings()
    zone = resolve_timezone(settings.timezone)

    def read(session: Session) -> list[payer_accounts.ExportRow]:
        first = payer_accounts.parse_month(month)
        if tenant:
            tenant_wall.set_scope(
                session, tenant_wall.tenant_scope(require_tenant(session, tenant).id)
            )
        return payer_accounts.month_readings(session, first, zone)

    rows = _settled(read)
    if as_json:
        typer.echo(json.dumps([dataclasses.asdict(r) for r in rows], ensure_ascii=False))
        return
    writer = csv.writer(sys.stdout, lineterminator="\r\n")
    writer.writerow(payer_accounts.EXPORT_HEADER)
    writer.writerows(payer_accounts.csv_row(r) for r in rows)
