"""Background processes that `hotline up` starts and `hotline down` stops.

Each service is `python -m hotline <name>` with a pid file; we only ever signal a pid whose
command line is ours, so a stale pid file never kills somebody else's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from call_router.settings import Settings

SERVICE_NAMES = ("agi", "router", "dashboard")


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    detail: str


def pid_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.pid"


def ready_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.ready"


def log_file(settings: Settings, name: str) -> Path:
    return settings.log_dir / f"{name}.log"


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _ours(pid: int, name: str) -> bool:
    args = _cmdline(pid)
    return "hotline" in args and name in args


def read_pid(settings: Settings, name: str) -> int | None:
    try:
        pid = int(pid_file(settings, name).read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if _ours(pid, name) else None


def start_service(settings: Settings, name: str) -> int:
    existing = read_pid(settings, name)
    if existing:
        return existing
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    ready_file(settings, name).unlink(missing_ok=True)
    with log_file(settings, name).open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hotline", name],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=os.environ.copy(),
        )
    pid_file(settings, name).write_text(str(proc.pid))
    return proc.pid


def stop_service(settings: Settings, name: str, timeout: float = 10) -> bool:
    pid = read_pid(settings, name)
    if pid is None:
        pid_file(settings, name).unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _ours(pid, name):
        time.sleep(0.1)
    if _ours(pid, name):
        os.kill(pid, signal.SIGKILL)
    pid_file(settings, name).unlink(missing_ok=True)
    ready_file(settings, name).unlink(missing_ok=True)
    return True


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 - loopback URL from settings
            return bool(resp.status == 200)
    except OSError:
        return False


def is_ready(settings: Settings, name: str) -> bool:
    if name == "dashboard":
        return _http_ok(f"{settings.dashboard_url}/healthz")
    return ready_file(settings, name).exists()


def wait_ready(settings: Settings, name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    gone_since: float | None = None
    while time.monotonic() < deadline:
        if is_ready(settings, name):
            return
        # Judge a service dead only when it stays gone for a while, not on one look.
        if read_pid(settings, name) is None:
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > 2:
                break
        else:
            gone_since = None
        time.sleep(0.2)
    tail = _tail(log_file(settings, name))
    raise RuntimeError(f"service {name} did not become ready; last log lines:\n{tail}")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def status(settings: Settings, name: str) -> ServiceStatus:
    pid = read_pid(settings, name)
    if pid is None:
        return ServiceStatus(name, False, None, "stopped")
    return ServiceStatus(name, True, pid, "ready" if is_ready(settings, name) else "starting")


Serve = Callable[..., Awaitable[None]]


def run_foreground(settings: Settings, name: str, serve: Serve) -> None:
    """Run a service's `serve(settings, ready=event)`; its ready file exists while it is ready."""

    async def main() -> None:
        ready = asyncio.Event()
        path = ready_file(settings, name)

        async def announce() -> None:
            await ready.wait()
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(str(os.getpid()))

        announcer = asyncio.create_task(announce())
        try:
            await serve(settings, ready=ready)
        finally:
            announcer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await announcer
            path.unlink(missing_ok=True)

    asyncio.run(main())
