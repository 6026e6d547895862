"""`hotline areas …`: the service area's hierarchy (city → district → street → house) that
incidents target and callers are placed in. The rules are in call_router/areas.py."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from call_router.settings import get_settings

app = typer.Typer(help="Areas: city, districts, streets, houses.", no_args_is_help=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


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
    from call_router.db import Database

    data = file.read(areas.MAX_FILE_BYTES + 1)
    db = Database(get_settings().db_url)
    try:
        rows = areas.parse_csv(data)
        db.upgrade()
        with db.session() as session:
            result = areas.import_rows(session, rows)
            info = {"added": result.added, "updated": result.updated, "areas": result.paths}
    except areas.AreaImportError as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps(info, ensure_ascii=False))
    else:
        typer.echo(f"{info['added']} areas added, {info['updated']} updated")


@app.command("list")
def areas_list(as_json: JsonOpt = False) -> None:
    """Every area, each after its parent: path, name, level, keypad code."""
    from call_router import areas
    from call_router.db import Database

    db = Database(get_settings().db_url)
    try:
        db.upgrade()
        with db.session() as session:
            rows: list[dict[str, Any]] = [areas.as_json(a) for a in areas.listing(session)]
    finally:
        db.dispose()
    if as_json:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    for row in rows:
        code = f"  code {row['code']}" if row["code"] else ""
        typer.echo(f"{row['path']}  ({row['level']}: {row['name']}){code}")
    if not rows:
        typer.echo("no areas (import them with `hotline areas import FILE`)")
