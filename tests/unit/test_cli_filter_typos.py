"""A mistyped filter on the command line is a usage error, not an empty answer (found by a
newcomer's review, 2026-12-06: each of these printed nothing, or a plan of zeros, exit 0)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotline.cli import app


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["callbacks", "list", "--status", "bogus"], "open, closed or all"),
        (["requests", "list", "--state", "new", "--state", "bogus"], "bogus: the states are"),
        (["staffing", "--tenant", "nope"], "nope"),
    ],
)
def test_a_mistyped_filter_is_a_usage_error(
    args: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_DATABASE_URL", f"sqlite:///{tmp_path / 'hotline.db'}")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert says in result.output
