"""Unit-test plumbing: a migrated SQLite call log per test (or one made from the models), the
menu tests' settings, a FastAGI server on a free port and live state without Redis."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from agi_scripts.flows.services import FlowServices
from agi_scripts.server import AgiServer, RouteRegistry, build_app
from call_router.call_log import CallLog
from call_router.db import Database
from call_router.live_state import LiveState
from call_router.models import Base
from call_router.settings import Settings
from tests.conftest import free_port


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


def model_database(tmp_path: Path) -> Iterator[Database]:
    """For a `db` fixture: the test's SQLite call log made straight from the models (no
    migrations), disposed of afterwards."""
    database = Database(sqlite_url(tmp_path))
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture
async def live() -> AsyncIterator[LiveState]:
    """Live state whose Redis is a closed port: every write fails, as when Redis is down."""
    state = LiveState.from_url(f"redis://127.0.0.1:{free_port()}/0", "hotline-unit")
    yield state
    await state.close()


async def started_agi(
    settings: Settings, db: Database, services: FlowServices | None = None
) -> AgiServer:
    """The FastAGI server with these flow services (None: from the settings), writing to `db`,
    listening on a free local port; the caller stops it."""
    app = build_app(settings, CallLog(db), services)
    assert isinstance(app, RouteRegistry)
    agi = AgiServer(app, env_timeout=0.5, command_timeout=2.0)
    await agi.start("127.0.0.1", 0)
    return agi
