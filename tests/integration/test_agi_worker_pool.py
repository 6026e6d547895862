"""The parent of `hotline agi --workers N` (agi_scripts/worker_pool.WorkerPool) with real processes.

The workers here are tiny stand-ins (a few lines of Python that accept on the inherited socket
and answer with their index and pid), so supervision is tested in a second, without Asterisk:
both accept on the one shared port, SIGHUP reaches every worker, a killed worker is replaced
and the new one serves, SIGTERM stops them all, and a worker that cannot start stops the
server. The real workers through the real Asterisk: test_agi_workers_e2e.py.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agi_scripts.worker_pool import WorkerPool
from agi_scripts.workers import status_file
from call_router.pid_files import read_agi_workers as read_status
from call_router.settings import Settings

FAKE_WORKER = r"""
import os, signal, socket, sys
index, fd, ready, marker = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if sys.argv[5] == "broken":
    sys.exit(3)
sock = socket.socket(fileno=fd)
def hup(*_):
    with open(marker, "a") as out:
        out.write(f"{os.getpid()}\n")
signal.signal(signal.SIGHUP, hup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
os.write(ready, b"ready\n")
os.close(ready)
while True:
    conn, _ = sock.accept()
    conn.sendall(f"{index} {os.getpid()}\n".encode())
    conn.close()
"""


def fake_command(marker: Path, mode: str = "ok") -> Callable[[int, int, int], list[str]]:
    def command(index: int, listen_fd: int, ready_fd: int) -> list[str]:
        return [
            sys.executable, "-c", FAKE_WORKER,
            str(index), str(listen_fd), str(ready_fd), str(marker), mode,
        ]  # fmt: skip

    return command


def settings_for(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", agi_host="127.0.0.1", agi_port=0)


async def ask(port: int) -> tuple[int, int]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    line = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    index, pid = line.split()
    return int(index), int(pid)


async def until(check: Callable[[], Any], what: str, timeout: float = 30) -> Any:
    async with asyncio.timeout(timeout):
        while not (value := check()):
            await asyncio.sleep(0.05)
    assert value, what
    return value


async def test_workers_share_the_port_are_restarted_get_sighup_and_stop(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    marker = tmp_path / "hup.txt"
    pool = WorkerPool(settings, 2, command=fake_command(marker))
    ready = asyncio.Event()
    running = asyncio.create_task(pool.run(ready))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        status = read_status(settings)
        assert status is not None and status["parent"] == os.getpid()
        pids = {w["index"]: w["pid"] for w in status["workers"]}
        assert all(w["ready"] for w in status["workers"]) and len(set(pids.values())) == 2

        # Both workers take callers from the one port.
        served: set[tuple[int, int]] = set()
        for _ in range(40):
            served.add(await ask(pool.port))
            if len(served) == 2:
                break
        assert served == {(0, pids[0]), (1, pids[1])}

        # `hotline flows reload` signals the parent: every worker gets it.
        os.kill(os.getpid(), signal.SIGHUP)
        await until(
            lambda: marker.exists() and len(marker.read_text().split()) == 2, "SIGHUP forwarded"
        )
        assert {int(p) for p in marker.read_text().split()} == set(pids.values())

        # A worker killed outright is replaced; the new one serves.
        os.kill(pids[1], signal.SIGKILL)

        def replaced() -> int | None:
            now = read_status(settings)
            assert now is not None
            second = now["workers"][1]
            fresh = second["pid"] not in (None, pids[1]) and second["ready"]
            return int(second["pid"]) if fresh else None

        new_pid = await until(replaced, "worker 1 restarted")
        assert read_status(settings)["workers"][1]["restarts"] == 1  # type: ignore[index]
        seen: set[int] = set()
        for _ in range(40):
            seen.add((await ask(pool.port))[1])
            if new_pid in seen:
                break
        assert new_pid in seen and pids[1] not in seen

        os.kill(os.getpid(), signal.SIGTERM)  # the parent's SIGTERM: stops every worker
        await asyncio.wait_for(running, 30)
    finally:
        if not running.done():
            running.cancel()
            await asyncio.gather(running, return_exceptions=True)
    for pid in (pids[0], new_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert not status_file(settings).exists()
    with pytest.raises(OSError):
        await ask(pool.port)


async def test_a_worker_that_cannot_start_stops_the_server(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    pool = WorkerPool(settings, 2, command=fake_command(tmp_path / "hup.txt", "broken"))
    ready = asyncio.Event()
    with pytest.raises(RuntimeError, match="before it was ready"):
        await asyncio.wait_for(pool.run(ready), 30)
    assert not ready.is_set()
    assert not status_file(settings).exists()


async def test_the_port_in_use_is_reported_once_at_start(tmp_path: Path) -> None:
    taken = socket.create_server(("127.0.0.1", 0))
    try:
        port = taken.getsockname()[1]
        settings = Settings(state_dir=tmp_path / "state", agi_host="127.0.0.1", agi_port=port)
        pool = WorkerPool(settings, 2, command=fake_command(tmp_path / "hup.txt"), bind_wait=0.6)
        with pytest.raises(OSError):
            await pool.run(asyncio.Event())
    finally:
        taken.close()
    assert read_status(settings) is None  # nothing started
