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
    """The call-log database at the newest schema; the caller disposes of it. A database that
    cannot be reached, or a URL no driver takes, is one clear line (exit 1), not a traceback."""
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    from call_router.db import Database, first_line, unreachable

    try:
        db = Database(settings.db_url)
    except (ArgumentError, NoSuchModuleError) as exc:
        hint = " (PostgreSQL: postgresql+psycopg://...)" if "postgres" in settings.db_url else ""
        raise fail(f"HOTLINE_DATABASE_URL is not a database URL we can use{hint}: {exc}") from exc
    try:
        db.upgrade()
    except Exception as exc:
        db.dispose()
        if unreachable(exc):
            raise fail(
                f"cannot reach the database: {first_line(exc)}; start PostgreSQL (or check "
                "HOTLINE_DATABASE_URL)"
            ) from exc
        raise
    except BaseException:
        db.dispose()
        raise
    return db


def warn_loosened(settings: Settings) -> None:
    """Say, on stderr, which private files an admin made readable to others."""
    from call_router.private_files import loosened

    for item in loosened(settings):
        typer.secho(f"warning: {item.message()}", err=True, fg=typer.colors.YELLOW)
