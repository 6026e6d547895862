"""A box's FastAGI pool: which services run it, their names, addresses and files."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from call_router.pid_files import cmdline, is_ours, service_args
from call_router.settings import Settings
from hotline import services
from hotline.cli_services import pool_member
from tests.conftest import wait_for

POOL = ["127.0.0.2:18073", "127.0.1.2:18073"]


def settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(state_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_one_server_by_default_with_the_single_box_names(tmp_path: Path) -> None:
    s = settings(tmp_path, agi_port=18073)
    assert s.agi_addresses == ["127.0.0.1:18073"]
    assert services.pool_servers(s) == ("agi",)
    assert services.service_names(s) == services.SERVICE_NAMES
    assert s.agi_spool_file.name == "agi-call-log.jsonl"
    assert s.agi_workers_file.name == "agi-workers.json"


def test_the_second_server_listens_on_its_pool_address_with_files_of_its_own(
    tmp_path: Path,
) -> None:
    s = settings(tmp_path, agi_pool=POOL, agi_local_servers=2)
    assert services.service_names(s) == ("agi", "agi2", "router", "dashboard")
    second = pool_member(s.model_copy(update={"agi_server": 2}))
    assert (second.agi_host, second.agi_port, second.audiosocket_host) == (
        "127.0.1.2",
        18073,
        "127.0.1.2",
    )
    assert second.agi_service == "agi2"
    assert second.agi_spool_file.name == "agi2-call-log.jsonl"
    assert second.agi_workers_file.name == "agi2-workers.json"
    assert pool_member(s) is s  # server 1: the settings as they are


def test_pool_entries_must_be_host_and_port(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="agi_pool"):
        settings(tmp_path, agi_pool=["127.0.0.2:18073/evil"])


def test_a_pool_server_is_hotline_agi_with_its_number() -> None:
    assert service_args("agi") == ["agi"]
    assert service_args("agi2") == ["agi", "--server", "2"]
    assert service_args("router") == ["router"]


@pytest.fixture
def second_server() -> Iterator[int]:
    """A process whose command line is that of FastAGI server 2 (it only sleeps)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "hotline", "agi", "--server", "2"]
    )
    try:
        # Until execve is done /proc shows no command line yet.
        wait_for(lambda: "--server" in cmdline(proc.pid), timeout=10, interval=0.01)
        yield proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_pid_files_tell_the_pool_servers_apart(second_server: int) -> None:
    assert is_ours(second_server, "agi2")
    # Server 1's stale pid file must never make us signal server 2 (or the reverse).
    assert not is_ours(second_server, "agi")
    assert not is_ours(second_server, "agi3")


def test_a_pool_servers_workers_carry_its_number(monkeypatch: pytest.MonkeyPatch) -> None:
    from agi_scripts.worker_pool import worker_command

    monkeypatch.delenv("HOTLINE_AGI_SERVER", raising=False)
    assert "--server" not in worker_command(1, 3, 4)
    monkeypatch.setenv("HOTLINE_AGI_SERVER", "2")
    command = worker_command(1, 3, 4)
    assert command[command.index("agi") :][:3] == ["agi", "--server", "2"]
