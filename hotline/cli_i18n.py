"""`hotline i18n`: keep the dashboard's gettext catalogues in step with the code (a checkout's
tool for developers and translators; README.md, "Translations")."""

from __future__ import annotations

import json
from typing import Annotated

import typer

app = typer.Typer(help="The dashboard's translations (gettext catalogues).", no_args_is_help=True)


@app.command("extract")
def extract() -> None:
    """Extract the text keys (babel.cfg) into messages.pot and merge it into every .po."""
    from dashboard.i18n_catalogues import ROOT, update

    changed = update()
    for path in changed:
        typer.echo(f"updated {path.relative_to(ROOT)}")
    if not changed:
        typer.echo("the catalogues already match the code")


@app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print the problems as JSON.")] = False,
) -> None:
    """Every key used is translated in every catalogue (none empty or fuzzy); exit 1 if not."""
    from dashboard.i18n_catalogues import problems

    found = problems()
    if as_json:
        typer.echo(json.dumps({"ok": not found, "problems": found}))
    else:
        for problem in found:
            typer.secho(problem, err=True, fg=typer.colors.RED)
        typer.echo(f"{len(found)} problem(s) found" if found else "OK")
    if found:
        raise typer.Exit(1)
