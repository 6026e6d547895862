"""One database transaction for a CLI command, with the refusals that end it cleanly: the
command's `action(session)` runs on the migrated database; a refused input exits 2 with its
message on stderr (never a traceback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import typer

from call_router.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")


def run_in_session(action: Callable[[Session], T], refusals: tuple[type[Exception], ...]) -> T:
    from call_router.db import Database

    db = Database(get_settings().db_url)
    try:
        db.upgrade()
        with db.session() as session:
            return action(session)
    except refusals as err:
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    finally:
        db.dispose()
