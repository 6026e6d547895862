"""`hotline i18n`: keep the dashboard's gettext catalogues in step with the code (a checkout's
tool for developers and translators; README.md, "Translations")."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from hotline.cli_support import fail

app = typer.Typer(help="The dashboard's translations (gettext catalogues).", no_args_is_help=True)


def _need_checkout() -> None:
    from dashboard.i18n_catalogues import BABEL_CONFIG

    if not BABEL_CONFIG.exists():
        typer.secho(
            f"{BABEL_CONFIG} not found: run this from a source checkout", err=True, fg="red"
        )
        raise typer.Exit(2)


@app.command("extract")
def extract() -> None:
    """Extract the text keys (babel.cfg) into messages.pot and merge it into every .po."""
    from dashboard.i18n_catalogues import ROOT, update

    _need_checkout()
    changed = update()
    for path in changed:
        typer.echo(f"updated {path.relative_to(ROOT)}")
    if not changed:
        typer.echo("the catalogues already match the code")


@app.command("set")
def set_text(
    key: Annotated[str, typer.Argument(help="The text key, e.g. inc.new_field.")],
    texts: Annotated[
        list[str], typer.Argument(help='LANG=TEXT per language: en="New field" ru="Новое поле"')
    ],
) -> None:
    """Write a key's text into the catalogues (then `hotline i18n extract` if it is new)."""
    from dashboard.i18n_catalogues import ROOT, set_texts

    by_lang = {}
    for item in texts:
        lang, sep, text = item.partition("=")
        if not sep or not lang or not text:
            raise fail(f"expected LANG=TEXT, got {item!r}", 2)
        by_lang[lang] = text
    try:
        changed = set_texts(key, by_lang)
    except ValueError as error:
        raise fail(str(error), 2) from None
    for path in changed:
        typer.echo(f"updated {path.relative_to(ROOT)}")


@app.command("check")
def check(
    as_json: Annotated[bool, typer.Option("--json", help="Print the problems as JSON.")] = False,
) -> None:
    """Every key used is translated in every catalogue (none empty or fuzzy); exit 1 if not."""
    from dashboard.i18n_catalogues import problems

    _need_checkout()
    found = problems()
    if as_json:
        typer.echo(json.dumps({"ok": not found, "problems": found}))
    else:
        for problem in found:
            typer.secho(problem, err=True, fg=typer.colors.RED)
        typer.echo(f"{len(found)} problem(s) found" if found else "OK")
    if found:
        raise typer.Exit(1)
