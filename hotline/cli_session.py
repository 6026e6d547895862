"""One database transaction for a CLI command, with the refusals that end it cleanly: the
command's `action(session)` runs on the migrated database; a refused input exits 2 with its
message on stderr (never a traceback)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from call_router.settings import get_settings
from hotline.cli_support import fail, open_database

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

T = TypeVar("T")


def run_in_session(action: Callable[[Session], T], refusals: tuple[type[Exception], ...] = ()) -> T:
    db = open_database(get_settings())
    try:
        with db.session() as session:
            return action(session)
    except refusals as err:
        raise fail(f"error: {err}", 2) from None
    finally:
        db.dispose()
