"""What many `hotline` commands share: the migrated database, `--json`, refusals, warnings.

The warning is about private files an admin made readable to others."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from call_router.db import Database
    from call_router.settings import Settings

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Say `message` in red on stderr; the caller raises the returned exit (code `code`)."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def emit(info: Any, as_json: bool, text: Callable[[Any], str]) -> None:
    """A command's result on stdout: JSON with --json, else `text(info)`."""
    typer.echo(json.dumps(info, ensure_ascii=False) if as_json else text(info))


def open_database(settings: Settings) -> Database:
    """The call-log database at the newest schema; the caller disposes of it."""
    from call_router.db import Database

    db = Database(settings.db_url)
    try:
        db.upgrade()
    except BaseException:
        db.dispose()
        raise
    return db


def warn_loosened(settings: Settings) -> None:
    """Say, on stderr, which private files an admin made readable to others."""
    from call_router.private_files import loosened

    for item in loosened(settings):
        typer.secho(f"warning: {item.message()}", err=True, fg=typer.colors.YELLOW)
