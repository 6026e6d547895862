"""`hotline meters`: meter readings phoned in (ivr_flows/meters.yaml), per payer, with history."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from call_router import meter_store
from call_router.db import Database
from call_router.meter_models import MeterReading
from call_router.meter_readings import METER_KINDS, MeterKind, meter_kind
from call_router.models import utcnow
from call_router.settings import get_settings

app = typer.Typer(help="Meter readings submitted by phone.", no_args_is_help=True)

PayerOption = Annotated[str, typer.Option("--payer", help="The payer code (digits).")]
MeterOption = Annotated[
    str | None, typer.Option("--meter", help=f"One of: {', '.join(METER_KINDS)}.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON list on stdout.")]


def _db() -> Database:
    db = Database(get_settings().db_url)
    db.upgrade()
    return db


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
    db = _db()
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
    db = _db()
    try:
        with db.session() as session:
            try:
                stored = meter_store.submit(session, payer, kind, value, utcnow(), source="cli")
            except ValueError as exc:
                raise typer.BadParameter(str(exc), param_hint="--payer") from exc
            if stored.reading_id is None:
                check = stored.check
                detail = f" (last {check.last}, at most {check.limit})" if check.limit else ""
                typer.secho(f"refused: {check.problem}{detail}", err=True, fg=typer.colors.RED)
                raise typer.Exit(1)
            row = session.get(MeterReading, stored.reading_id)
            assert row is not None
            info = _row(row)
    finally:
        db.dispose()
    typer.echo(json.dumps(info, ensure_ascii=False) if as_json else f"reading {info['id']} stored")
