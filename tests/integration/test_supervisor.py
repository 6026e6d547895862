"""`hotline supervise` with real processes: a service stopped on purpose stays down, one that
crashes at every start is given up loudly (log and `hotline status`).

The supervisor runs in this process with a quick policy; the service is the real FastAGI
server (`python -m hotline agi`), made to crash at start by a port somebody else holds.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from call_router.db import Database
from call_router.settings import Settings
from hotline import services
from hotline.supervisor import RestartPolicy, Supervisor, read_records
from tests.conftest import HOTLINE, PORT_BASE, wait_for

# Clear of the session stack's ports and of test_process_faults_e2e's (PORT_BASE + 0..899).
AGI_PORT = PORT_BASE + 973
# Every death a fast crash: 0.1 s, 0.2 s, then given up.
QUICK = RestartPolicy(min_uptime=300, first_delay=0.1, max_delay=0.2, max_fast_crashes=2)
# Every death restarted in the very round that sees it.
AT_ONCE = RestartPolicy(min_uptime=0)


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    monkeypatch.setenv("HOTLINE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("HOTLINE_AGI_PORT", str(AGI_PORT))
    monkeypatch.setenv("HOTLINE_AUDIOSOCKET_PORT", str(AGI_PORT + 1))
    monkeypatch.setenv("HOTLINE_REDIS_PREFIX", f"hotline-test-supervisor-{os.getpid()}")
    monkeypatch.delenv("HOTLINE_DATABASE_URL", raising=False)
    settings = Settings()
    Database(settings.db_url).upgrade()
    try:
        yield settings
    finally:
        services.stop_service(settings, "agi")


def test_a_service_stopped_on_purpose_is_left_down(settings: Settings) -> None:
    supervisor = Supervisor(settings, ["agi"], policy=AT_ONCE)
    first = services.start_service(settings, "agi")
    services.wait_ready(settings, "agi", timeout=60)
    supervisor.tick()

    assert services.stop_service(settings, "agi")
    # The round that sees it gone would restart it at once, were it not stopped on purpose.
    supervisor.tick()
    assert services.read_pid(settings, "agi") is None
    assert supervisor.records()["agi"].restarts == 0

    # Started again: supervised again, so a crash now is restarted.
    again = services.start_service(settings, "agi")
    assert again != first and not services.is_held(settings, "agi")
    services.wait_ready(settings, "agi", timeout=60)
    os.kill(again, signal.SIGKILL)

    def restarted() -> int | None:
        supervisor.tick()
        pid = services.read_pid(settings, "agi")
        return pid if pid not in (None, again) else None

    wait_for(restarted, timeout=30, what="the killed service restarted")
    record = supervisor.records()["agi"]
    # It was our child (started in this process): how it ended is known.
    assert (record.restarts, record.last_exit) == (1, "killed by SIGKILL")


def test_a_service_that_crashes_at_every_start_is_given_up_loudly(settings: Settings) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", AGI_PORT))
        squatter.listen()
        supervisor = Supervisor(settings, ["agi"], policy=QUICK)
        services.start_service(settings, "agi")

        def given_up() -> bool:
            supervisor.tick()
            return supervisor.records()["agi"].gave_up

        wait_for(given_up, timeout=120, interval=0.2, what="the supervisor giving up")

    record = read_records(settings)["agi"]
    # The first start and two restarts, all dead within seconds; our children's exit is known.
    assert (record.restarts, record.fast_crashes, record.gave_up) == (2, 3, True)
    assert record.last_exit == "exit code 1"
    assert services.read_pid(settings, "agi") is None
    status = subprocess.run(
        [*HOTLINE, "status"], capture_output=True, text=True, timeout=60, env=os.environ.copy()
    )
    assert status.returncode == 3
    (line,) = [line for line in status.stdout.splitlines() if line.startswith("agi")]
    assert "GIVEN UP after 3 fast crashes (exit code 1)" in line, line
    assert "restarts 2" in line

    # Started again by hand (`hotline up` after the fault is fixed): supervised afresh.
    services.start_service(settings, "agi")
    services.wait_ready(settings, "agi", timeout=60)
    supervisor.tick()
    assert not read_records(settings)["agi"].gave_up


def test_two_starters_at_once_start_one_service(settings: Settings) -> None:
    """The supervisor restarting a dead service while someone else (`hotline up`, a test)
    starts it too: one process, recorded, never a second one nobody stops."""
    barrier = threading.Barrier(2)

    def start() -> int:
        barrier.wait()
        return services.start_service(settings, "agi")

    with ThreadPoolExecutor(2) as pool:
        started = list(pool.map(lambda _: start(), range(2)))
    try:
        assert started[0] == started[1], f"two services started: {started}"
        assert services.read_pid(settings, "agi") == started[0]
    finally:
        for pid in set(started) - {services.recorded_pid(settings, "agi")}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
