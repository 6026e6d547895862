"""`hotline flows check` on a fresh checkout (no prompt built yet): one line that says what
to run, not a hundred (found by a newcomer's review, 2026-12-06)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from hotline.cli import app


def test_unbuilt_prompts_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_RECORDINGS_DIR", str(tmp_path / "recordings"))
    result = CliRunner().invoke(app, ["flows", "check"])
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if "not built" in line]
    assert len(lines) == 1, result.output
    assert "prompt(s) not built" in lines[0] and "run `hotline prompts build`" in lines[0]
    # With the sound files not required, the same flows are valid.
    assert CliRunner().invoke(app, ["flows", "check", "--texts-only"]).exit_code == 0
