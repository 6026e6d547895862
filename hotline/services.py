"""Background processes that `hotline up` starts and `hotline down` stops.

Each service is `python -m hotline <name>` with a pid file; we only ever signal a pid whose
command line is ours, so a stale pid file never kills somebody else's process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from call_router.log_setup import configure_logging
from call_router.pid_files import cmdline, is_ours, pid_file, read_pid, service_args
from call_router.settings import Settings

SERVICE_NAMES = ("agi", "router", "dashboard")


def pool_servers(settings: Settings) -> tuple[str, ...]:
    """This box's FastAGI servers: agi, then agi2 ... (settings.agi_local_servers)."""
    count = min(settings.agi_local_servers, len(settings.agi_addresses))
    return ("agi", *(f"agi{k}" for k in range(2, count + 1)))


def service_names(settings: Settings) -> tuple[str, ...]:
    """Every service `hotline up` runs here: SERVICE_NAMES plus the pool's other servers."""
    return (*pool_servers(settings), *SERVICE_NAMES[1:])


# How long a started service may take to show its command line in /proc (execve done).
EXEC_TIMEOUT = 5.0


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    pid: int | None
    detail: str


def ready_file(settings: Settings, name: str) -> Path:
    return settings.run_dir / f"{name}.ready"


def log_file(settings: Settings, name: str) -> Path:
    return settings.log_dir / f"{name}.log"


def held_file(settings: Settings, name: str) -> Path:
    """Present while a service is stopped on purpose: the supervisor leaves it down."""
    return settings.run_dir / f"{name}.held"


def is_held(settings: Settings, name: str) -> bool:
    return held_file(settings, name).exists()


def hold(settings: Settings, name: str) -> None:
    """Mark a service as stopped on purpose (before stopping it): nothing restarts it until
    the next start_service."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    held_file(settings, name).touch()


def start_service(settings: Settings, name: str, env: Mapping[str, str] | None = None) -> int:
    """Start a service (unless it runs); from then on the supervisor restarts it if it dies.

    `env`: HOTLINE_* variables on top of ours (a cluster node's own settings)."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    settings.log_dir.mkdir(parents=True, exist_ok=True)
    # One starter at a time: the supervisor restarting a dead service and `hotline up` (or
    # anyone) starting it would otherwise both find it down and start two, one of them
    # unrecorded, never stopped, and handling the same events twice.
    with _start_lock(settings, name):
        existing = read_pid(settings, name)
        if existing:
            held_file(settings, name).unlink(missing_ok=True)
            return existing
        ready_file(settings, name).unlink(missing_ok=True)
        with log_file(settings, name).open("ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "hotline", *service_args(name)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, **(env or {})},
            )
        # Popen may return while execve is still under way (vfork), when /proc shows no
        # command line yet: record the pid once it is recognisably ours, so nobody takes it
        # for dead.
        deadline = time.monotonic() + EXEC_TIMEOUT
        while not is_ours(proc.pid, name) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        pid_file(settings, name).write_text(str(proc.pid))
        # Only now: until the new pid is recorded the supervisor would take the old one for
        # dead.
        held_file(settings, name).unlink(missing_ok=True)
        return proc.pid


@contextlib.contextmanager
def _start_lock(settings: Settings, name: str) -> Iterator[None]:
    """An exclusive lock on run/<name>.start.lock (held only while starting; a killed
    holder's lock is released by the kernel)."""
    with (settings.run_dir / f"{name}.start.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def recorded_pid(settings: Settings, name: str) -> int | None:
    try:
        return int(pid_file(settings, name).read_text().strip())
    except (OSError, ValueError):
        return None


def process_age(pid: int) -> float | None:
    """Seconds since the process started (Linux /proc), None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        uptime = float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    # Field 22, after "pid (comm)" whose comm may hold spaces: start time in clock ticks.
    started = int(stat[stat.rfind(")") + 2 :].split()[19]) / os.sysconf("SC_CLK_TCK")
    return max(0.0, uptime - started)


def group_members(group: int) -> list[int]:
    """Live processes in process group `group` (from Linux /proc; zombies left out)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[0] != "Z" and int(fields[2]) == group:
            members.append(int(entry.name))
    return members


def _stop_group(group: int, timeout: float, only: Callable[[int], bool] | None = None) -> bool:
    """End what is left of a service's process group (the dashboard's uvicorn workers);
    `only` picks which members. Whether there was anything to end."""

    def targets() -> list[int]:
        return [pid for pid in group_members(group) if only is None or only(pid)]

    found = bool(targets())
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = targets()
        if not left:
            break
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and targets():
            time.sleep(0.1)
    return found


def _started_by(name: str) -> Callable[[int], bool]:
    """A process the service may have started: a multiprocessing child (uvicorn's workers,
    multiprocessing's resource tracker) or one with the service's own command line."""

    def check(pid: int) -> bool:
        return is_ours(pid, name) or any("multiprocessing" in arg for arg in cmdline(pid))

    return check


def stop_service(settings: Settings, name: str, timeout: float = 10) -> bool:
    """Stop a service on purpose (the supervisor leaves it down); whether anything was running."""
    hold(settings, name)
    return clean_up(settings, name, timeout)


def clean_up(settings: Settings, name: str, timeout: float = 10) -> bool:
    """Stop a service and the processes it started; whether anything was running.

    start_service makes each service a session and process-group leader, so its children (the
    dashboard's uvicorn workers) carry its pid as their group id. If the leader died on its
    own, its workers may live on (holding the port): the group in the pid file is then
    searched for them, and only processes that look like them are ended.
    """
    recorded = recorded_pid(settings, name)
    pid = read_pid(settings, name)
    stopped = False
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and is_ours(pid, name):
            time.sleep(0.1)
        if is_ours(pid, name):
            os.kill(pid, signal.SIGKILL)
        stopped = True
        # uvicorn's parent stops its workers on SIGTERM; this ends any it could not.
        _stop_group(pid, timeout=min(timeout, 5))
    elif recorded is not None and _leader_gone(recorded, timeout=min(timeout, 2)):
        stopped = _stop_group(recorded, timeout=min(timeout, 5), only=_started_by(name))
    pid_file(settings, name).unlink(missing_ok=True)
    ready_file(settings, name).unlink(missing_ok=True)
    return stopped


def _leader_gone(leader: int, timeout: float) -> bool:
    """Whether a dead service's leader has left its group. A SIGKILLed one shows no command
    line while it is still exiting (its threads): wait for that to finish."""
    deadline = time.monotonic() + timeout
    while leader in group_members(leader):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
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


def run_foreground(
    settings: Settings,
    name: str,
    serve: Serve,
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
) -> None:
    """Run a service's `serve(settings, ready=event)`; its ready file exists while it is ready.

    `loop_factory`: the event loop to run it on (None: asyncio's default)."""
    configure_logging(settings)

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

    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(main())
