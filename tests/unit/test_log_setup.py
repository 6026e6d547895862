"""Every process's log lines: level and format from the settings (call_router/log_setup.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from call_router.log_setup import configure_logging
from call_router.settings import Settings


@pytest.fixture(autouse=True)
def restored_logging() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def _settings(tmp_path: Path, **values: str) -> Settings:
    return Settings(state_dir=tmp_path, redis_prefix="test", **values)  # type: ignore[arg-type]


def test_a_service_at_warning_writes_no_info_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(_settings(tmp_path, log_level="warning"))
    log = structlog.get_logger("hotline.test")
    log.info("hangup_in_menu", node="menu")
    log.warning("database_read_failed", what="caller_language")
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and "database_read_failed" in lines[0]


def test_json_lines_for_a_log_collector_with_plain_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(_settings(tmp_path, log_format="json"))
    log = structlog.get_logger("hotline.test")
    log.info("hangup_in_menu", node="menu", reason="HANGUP received")
    secret = "postgresql://hotline:s3cret@db/hotline"  # noqa: F841 - a local no log may show
    try:
        raise RuntimeError("database away")
    except RuntimeError:
        log.exception("call_writer_failed")
    first, second = (json.loads(line) for line in capsys.readouterr().err.splitlines())
    assert first["event"] == "hangup_in_menu" and first["level"] == "info"
    assert first["node"] == "menu" and first["timestamp"].endswith("Z")
    assert second["level"] == "error" and "RuntimeError: database away" in second["exception"]
    assert "s3cret" not in json.dumps(second)


def test_a_command_run_by_hand_logs_info_for_a_person(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging()
    structlog.get_logger("hotline.test").info("replaying", writes=3)
    line = capsys.readouterr().err
    assert "replaying" in line and "writes=3" in line and not line.startswith("{")
