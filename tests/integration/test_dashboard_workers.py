"""The dashboard with several uvicorn workers, started and stopped the way `hotline up`/`down` do.

`hotline up` starts `python -m hotline dashboard` through hotline.services.start_service; with
HOTLINE_DASHBOARD_WORKERS=2 that process is uvicorn's parent and two worker processes serve. The
tests check that they answer (health and an authenticated API call), that `hotline status` sees
the service, and that `hotline down` leaves no process behind — also when the parent died first.
"""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from call_router import accounts
from call_router.db import Database
from call_router.settings import Settings
from hotline import services
from tests.conftest import PORT_BASE, run_hotline, wait_for

PORT = PORT_BASE + 86


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def processes_of(state_dir: Path) -> list[int]:
    """Every live process started with this state directory in its environment."""
    marker = f"HOTLINE_STATE_DIR={state_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker in environ and state != "Z":
            found.append(int(entry.name))
    return found


def workers_of(leader: int) -> list[int]:
    return [
        pid
        for pid in services.group_members(leader)
        if "multiprocessing.spawn" in _cmdline(pid) and pid != leader
    ]


def port_open() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", PORT)) == 0


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    """Environment for a dashboard with two workers on SQLite (what `hotline up` uses by
    default; several processes share it in WAL mode)."""
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_DASHBOARD_PORT", str(PORT))
    monkeypatch.setenv("HOTLINE_DASHBOARD_WORKERS", "2")
    monkeypatch.setenv("HOTLINE_REDIS_PREFIX", f"hotline-test-workers-{os.getpid()}")
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    assert not port_open(), f"port {PORT} is taken: set HOTLINE_TEST_PORT_BASE"
    settings = Settings()
    Database(settings.db_url).upgrade()
    try:
        yield settings
    finally:
        # Whatever a failed test left running: the same command a developer would use.
        run_hotline("down", check=False)


def supervisor_token(settings: Settings) -> str:
    db = Database(settings.db_url)
    with db.session() as session:
        token, _ = accounts.create_token(
            session, accounts.SUPERVISOR, name="workers-test", now=datetime.now(UTC)
        )
    db.dispose()
    return token


def test_two_workers_serve_and_down_stops_them_all(settings: Settings) -> None:
    token = supervisor_token(settings)
    leader = services.start_service(settings, "dashboard")
    services.wait_ready(settings, "dashboard", timeout=60)
    workers = wait_for(
        lambda: (found := workers_of(leader)) and len(found) == 2 and found,
        what="two uvicorn workers in the service's process group",
    )

    status = run_hotline("status", check=False).stdout
    dashboard_line = next(line for line in status.splitlines() if line.startswith("dashboard"))
    assert "ready" in dashboard_line and f"pid {leader}" in dashboard_line

    # Concurrent authenticated requests, each on its own connection: the workers share the
    # listening socket, and sign-in data lives in the database every worker reads.
    def fetch(_: int) -> int:
        with httpx.Client(base_url=f"http://127.0.0.1:{PORT}", timeout=30) as client:
            response = client.get("/api/calls", headers={"Authorization": f"Bearer {token}"})
            return response.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(fetch, range(24))) == {200}
    assert set(workers_of(leader)) == set(workers), "no worker died while serving"

    out = run_hotline("down").stdout
    assert "hotline stopped" in out
    assert processes_of(settings.state_dir) == []
    assert not port_open()
    assert not services.pid_file(settings, "dashboard").exists()


def test_down_ends_workers_whose_parent_died(settings: Settings) -> None:
    leader = services.start_service(settings, "dashboard")
    services.wait_ready(settings, "dashboard", timeout=60)
    workers = wait_for(
        lambda: (found := workers_of(leader)) and len(found) == 2 and found,
        what="two uvicorn workers",
    )
    # The parent is killed outright (OOM killer, kill -9): its workers live on, holding the port.
    os.kill(leader, signal.SIGKILL)
    wait_for(lambda: services.read_pid(settings, "dashboard") is None, what="the parent gone")
    assert all(Path(f"/proc/{pid}").exists() for pid in workers)
    assert port_open(), "the orphaned workers still listen"

    run_hotline("down")
    assert processes_of(settings.state_dir) == []
    assert not port_open()
