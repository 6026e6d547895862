"""`hotline reports` with dates at the calendar's end: a clear usage error, never a traceback
(call_router/date_range.py; found by playing attacker, 2026-12-06)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotline.cli_reports import app


@pytest.mark.parametrize(
    "args",
    [
        ["agents", "--since", "9999-12-31"],
        ["agents", "--since", "2026-12-01", "--until", "0001-01-01"],
        ["rollup", "--since", "9999-12-31T23:00:00-12:00"],
    ],
)
def test_dates_at_the_calendars_end_are_a_usage_error(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "between the years" in result.output
    assert not (tmp_path / "unused.db").exists()  # refused before the database is opened
