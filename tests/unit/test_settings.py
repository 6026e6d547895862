from __future__ import annotations

import stat
from pathlib import Path

import pytest

from call_router.settings import QUEUES, Settings, SettingsFileMissing


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


def test_a_named_settings_file_must_exist_and_empty_names_none(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A typo in HOTLINE_CONFIG_FILE must not quietly run the hotline on defaults (another
    database, another number)."""
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOTLINE_CONFIG_FILE", str(tmp_path / "hotlin.toml"))
    with pytest.raises(SettingsFileMissing, match="hotlin.toml"):
        Settings()
    # Empty: no file at all, not even ./hotline.toml.
    (tmp_path / "hotline.toml").write_text('hotline_number = "122"\n')
    monkeypatch.setenv("HOTLINE_CONFIG_FILE", "")
    assert Settings().hotline_number == "500100"
    monkeypatch.delenv("HOTLINE_CONFIG_FILE")
    assert Settings().hotline_number == "122"


def test_the_cli_names_a_wrong_setting_without_echoing_its_value(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hotline import cli

    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_CONFIG_FILE", "")
    monkeypatch.setattr("sys.argv", ["hotline", "operators", "list", "--json"])
    for name, value, says in (
        ("HOTLINE_DATABASE_URL", "mysql://hotline:s3cret-pw@db/hotline", "not mysql"),
        ("HOTLINE_DATABASE_URL", "postgresql+psycopg2://hotline:s3cret-pw@db/x", "psycopg2"),
        ("HOTLINE_DATABASE_URL", "s3cret-pw", "not a database URL"),
        ("HOTLINE_DATABASE_URL", "postgres://hotline:s3cret-pw@db/x", "postgresql+psycopg://"),
        ("HOTLINE_REDIS_URL", "s3cret-pw@localhost:6379", "redis://"),
        ("HOTLINE_AGI_PORT", "s3cret-pw", "valid integer"),
    ):
        with monkeypatch.context() as patch:
            patch.setenv(name, value)
            with pytest.raises(SystemExit) as exit_:
                cli.main()
        out = capsys.readouterr()
        assert exit_.value.code == 2 and out.out == ""
        setting = name.removeprefix("HOTLINE_").lower()
        assert f"hotline: {name} (or `{setting}` in the settings file): " in out.err, out.err
        assert says in out.err, out.err
        assert "s3cret" not in out.err and "Traceback" not in out.err
