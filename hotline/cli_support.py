"""What many `hotline` commands share: the migrated database, a refusal on stderr, and the
warning about private files an admin made readable to others."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from call_router.db import Database
    from call_router.settings import Settings


def fail(message: str, code: int = 1) -> typer.Exit:
    """Say `message` in red on stderr; the caller raises the returned exit (code `code`)."""
    typer.secho(message, err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def open_database(settings: Settings) -> Database:
    """The call-log database at the newest schema; the caller disposes of it."""
    from call_router.db import Database

    db = Database(settings.db_url)
    db.upgrade()
    return db


def warn_loosened(settings: Settings) -> None:
    """Say, on stderr, which private files an admin made readable to others."""
    from call_router.private_files import loosened

    for item in loosened(settings):
        typer.secho(f"warning: {item.message()}", err=True, fg=typer.colors.YELLOW)
