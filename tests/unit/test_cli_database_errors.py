"""An admin's ordinary database mistakes: one clear line, never a traceback (found by a
newcomer's review, 2026-12-06: ~500 lines of traceback for PostgreSQL down)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotline.cli import app


@pytest.mark.parametrize(
    ("url", "says"),
    [
        # Nothing listens on port 1: as a PostgreSQL that is down.
        ("postgresql+psycopg://hotline:x@127.0.0.1:1/hotline", "cannot reach the database"),
        # A URL of a database or driver the call log does not take (postgres://, mysql://,
        # psycopg2) is a settings error (tests/unit/test_settings.py).
    ],
)
def test_a_database_the_cli_cannot_use_is_one_clear_line(
    url: str, says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", url)
    result = CliRunner().invoke(app, ["users", "list"])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit), result.exception
    assert says in result.output and "Traceback" not in result.output
