"""`hotline areas …`: the service area's hierarchy (city → district → street → house) that
incidents target and callers are placed in. The rules are in call_router/areas.py."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from hotline.cli_session import run_in_session
from hotline.cli_support import JsonOpt, fail

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

app = typer.Typer(help="Areas: city, districts, streets, houses.", no_args_is_help=True)


@app.command("import")
def areas_import(
    file: Annotated[
        typer.FileBinaryRead,
        typer.Argument(help="CSV: city,district,street,house,code; - = stdin"),
    ],
    as_json: JsonOpt = False,
) -> None:
    """Import areas from CSV: one node a line, named by its ancestors, lower levels left
    empty for a higher node (`Irkutsk,Oktyabrsky,,,11`: a district, keypad code 11);
    ancestors a line implies are added too. `code` (1-6 digits) is what a caller keys to
    say where they are. Every line is checked first: any bad line refuses the whole file
    (each bad line listed), nothing is half-imported."""
    from call_router import areas

    data = file.read(areas.MAX_FILE_BYTES + 1)
    try:
        rows = areas.parse_csv(data)  # every line checked before the database is touched
    except areas.AreaImportError as err:
        raise fail(f"error: {err}", 2) from None

    def load(session: Session) -> dict[str, Any]:
        result = areas.import_rows(session, rows)
        return {"added": result.added, "updated": result.updated, "areas": result.paths}

    info = run_in_session(load, (areas.AreaImportError,))
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
    else:
        typer.echo(f"{info['added']} areas added, {info['updated']} updated")


@app.command("list")
def areas_list(as_json: JsonOpt = False) -> None:
    """Every area, each after its parent: path, name, level, keypad code."""
    from call_router import areas

    rows: list[dict[str, Any]] = run_in_session(
        lambda session: [areas.as_json(a) for a in areas.listing(session)]
    )
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        code = f"  code {row['code']}" if row["code"] else ""
        typer.echo(f"{row['path']}  ({row['level']}: {row['name']}){code}")
    if not rows:
        typer.echo("no areas (import them with `hotline areas import FILE`)")
