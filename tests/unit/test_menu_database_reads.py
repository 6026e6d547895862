"""The menu's database reads (agi_scripts/handlers/hotline.py `_read`) when the database is away."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import structlog
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs

from agi_scripts.handlers.hotline import _read


def away(_number: str) -> str:
    raise OperationalError("SELECT", {}, ConnectionRefusedError("database is away"))


async def test_a_failed_read_is_unknown_and_logged_without_a_traceback() -> None:
    # A traceback rendered on the FastAGI event loop (structlog's console renderer) took ~2 s
    # of CPU on the test machine: every other caller's AGI replies waited, and under load
    # their ANSWER timed out (agi_out_of_step) and the calls fell to the fail-safe.
    ctx: Any = SimpleNamespace(log=structlog.get_logger("test"))
    with capture_logs() as logs:
        found = await _read(ctx, "caller_language", away, "+74951119701")
    assert found is None
    (entry,) = logs
    assert entry["event"] == "database_read_failed" and entry["what"] == "caller_language"
    assert "database is away" in entry["error"]
    assert "exc_info" not in entry
