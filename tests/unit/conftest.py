"""Unit-test plumbing: a migrated SQLite call log per test and the menu tests' settings."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from call_router.db import Database
from call_router.settings import Settings


def sqlite_url(tmp_path: Path) -> str:
    """The test's own SQLite call log (the file `db` migrates)."""
    return f"sqlite:///{tmp_path / 'calls.db'}"


def menu_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for a call through the menus: the test's call log, one short try per menu."""
    values: dict[str, Any] = {
        "state_dir": tmp_path / "state",
        "database_url": sqlite_url(tmp_path),
        "recordings_dir": tmp_path / "recordings",
        "menu_timeout": 1,
        "menu_retries": 1,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    """The test's SQLite call log, migrated to the newest schema."""
    database = Database(sqlite_url(tmp_path))
    database.upgrade()
    yield database
    database.dispose()
