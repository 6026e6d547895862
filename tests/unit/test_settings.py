from __future__ import annotations

import stat
from pathlib import Path

import pytest

from call_router.settings import QUEUES, Settings


def test_environment_overrides_defaults(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_SIP_PORT", "15099")
    settings = Settings()
    assert settings.sip_port == 15099
    assert settings.db_url == f"sqlite:///{tmp_path / 'hotline.db'}"


def test_optional_toml_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "hotline.toml"
    config.write_text('hotline_number = "122"\nsip_port = 5080\n')
    monkeypatch.setenv("HOTLINE_CONFIG_FILE", str(config))
    monkeypatch.setenv("HOTLINE_SIP_PORT", "5090")
    settings = Settings()
    assert settings.hotline_number == "122"
    assert settings.sip_port == 5090, "the environment wins over the file"


def test_ami_secret_is_generated_once_and_private(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    first = Settings().ami_secret
    assert len(first) >= 24
    assert Settings().ami_secret == first
    mode = stat.S_IMODE((tmp_path / "secrets.json").stat().st_mode)
    assert mode == 0o600
    other = tmp_path / "other"
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(other))
    assert Settings().ami_secret != first


def test_no_queue_is_named_general() -> None:
    # app_queue reads [general] in queues.conf as its global settings.
    assert "general" not in QUEUES
    assert {"plumbing", "electricity", "heating", "lift", "meters", "coordinator", "duty"} == set(
        QUEUES
    )


@pytest.mark.parametrize(
    ("setting", "database_url", "in_process"),
    [
        (None, None, True),  # the default: auto, on the embedded SQLite
        ("auto", "postgresql+psycopg://hotline@db/hotline", False),
        ("true", "postgresql+psycopg://hotline@db/hotline", True),
        ("false", None, False),
    ],
)
def test_the_call_log_writer_runs_where_the_database_makes_it_cheaper(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    setting: str | None,
    database_url: str | None,
    in_process: bool,
) -> None:
    """auto: a child process with SQLite (its work is the FastAGI core's own), a thread with
    PostgreSQL (the server does the work); an explicit true/false wins."""
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.delenv("HOTLINE_AGI_WRITER_PROCESS", raising=False)
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    if setting is not None:
        monkeypatch.setenv("HOTLINE_AGI_WRITER_PROCESS", setting)
    if database_url is not None:
        monkeypatch.setenv("HOTLINE_DATABASE_URL", database_url)
    assert Settings().agi_writer_in_process is in_process
